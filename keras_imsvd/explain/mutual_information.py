"""Mutual information between variables, read from blocks of a joint matrix."""

import numpy as np

from keras_imsvd.explain._codes import check_joint_matrix
from keras_imsvd.explain._codes import check_variables
from keras_imsvd.explain._codes import soft_codes


def _entropy(probabilities, axis=-1):
    """Shannon entropy in nats along `axis`, with `0 log 0 = 0`.

    Args:
        probabilities: Non-negative array; normalised along `axis` here.
        axis: Axis of the distribution. Defaults to `-1`.

    Returns:
        A float64 array without `axis`.
    """
    p = np.asarray(probabilities, dtype="float64")
    p = p / np.sum(p, axis=axis, keepdims=True)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -np.sum(p * logs, axis=axis)


def _block_mutual_information(blocks):
    """Mutual information of joint distributions `(..., b, b)`, in nats.

    `MI = sum_ij P_ij log(P_ij / (r_i c_j))` with `r`, `c` the row and column
    marginals. Each block is first normalised to sum to 1 (soft codes sum to 1
    only up to their clamp). Zero entries contribute 0.

    Args:
        blocks: Non-negative array `(..., b, b)`.

    Returns:
        A float64 array `(...)`, each value in `[0, log b]`.
    """
    joint = np.asarray(blocks, dtype="float64")
    joint = joint / np.sum(joint, axis=(-2, -1), keepdims=True)
    rows = np.sum(joint, axis=-1, keepdims=True)  # (..., b, 1)
    columns = np.sum(joint, axis=-2, keepdims=True)  # (..., 1, b)
    positive = joint > 0
    ratio = np.where(positive, joint, 1.0) / np.where(positive, rows * columns, 1.0)
    information = np.sum(joint * np.log(ratio), axis=(-2, -1))
    # Rounding can leave tiny negatives for independent variables.
    return np.maximum(information, 0.0)


def mutual_information_matrix(P, bin_size=None):
    """Mutual information between every pair of variables of a joint matrix.

    Block `(k, l)` of `P` is the joint distribution of variable k (rows) and
    variable l (columns); its mutual information is
    `MI_kl = sum_ij P_ij log(P_ij / (r_i c_j))`, with `r` and `c` the
    marginals of the block. For the between-view matrix of
    `joint_probability_matrix`, off-diagonal entries are the redundancy that
    the loss term `L_off` drives to zero, and the diagonal entries measure how
    much of a variable the two views share. Blocks are processed one row of
    blocks at a time, so no copy of `P` is made.

    Args:
        P: A joint matrix `(V b, V b)` from `joint_probability_matrix`.
        bin_size: Bins per variable `b`, or `None` to read it from `P` (its
            blocks each sum to 1, so `P.sum() == V^2`). Defaults to `None`.

    Returns:
        A float64 NumPy array `(V, V)` in nats; each value lies in
        `[0, log b]`.

    Example:

    >>> import numpy as np
    >>> from keras_imsvd import explain
    >>> codes = np.eye(4)[np.arange(8) % 4][:, None, :]  # (8, 1, 4) one-hot
    >>> P = explain.joint_probability_matrix_from_codes(codes, codes)
    >>> np.round(explain.mutual_information_matrix(P, bin_size=4), 4)
    array([[1.3863]])
    """
    P, bin_size, num_blocks = check_joint_matrix(P, bin_size)
    result = np.zeros((num_blocks, num_blocks), dtype="float64")
    for k in range(num_blocks):
        strip = P[k * bin_size : (k + 1) * bin_size]  # (b, V b)
        blocks = strip.reshape(bin_size, num_blocks, bin_size).transpose(1, 0, 2)
        result[k] = _block_mutual_information(blocks)  # (V, b, b) -> (V,)
    return result


def normalize_redundancy(redundancy):
    """Mutual information over the smaller entropy: a share in `[0, 1]`.

    `MI_kl / min(H_k, H_l)`, the fraction of the less informative variable's
    information that the other one repeats. This compares models whose
    variables carry different amounts of information (a model with collapsed,
    low-entropy variables has little mutual information in nats, yet may
    repeat all of it). Variables of zero entropy give 0.

    Args:
        redundancy: A `(V, V)` matrix from `redundancy_matrix`, entropies on
            its diagonal.

    Returns:
        A float64 NumPy array `(V, V)` with ones on the diagonal (zeros for
        variables of zero entropy).

    Example:

    >>> import numpy as np
    >>> from keras_imsvd import explain
    >>> explain.normalize_redundancy(np.array([[2.0, 0.5], [0.5, 1.0]]))
    array([[1. , 0.5],
           [0.5, 1. ]])
    """
    redundancy = np.asarray(redundancy, dtype="float64")
    if redundancy.ndim != 2 or redundancy.shape[0] != redundancy.shape[1]:
        raise ValueError(
            "`redundancy` must be a square matrix from redundancy_matrix(). "
            f"Received: shape={redundancy.shape}"
        )
    entropies = np.diag(redundancy)
    smaller = np.minimum(entropies[:, None], entropies[None, :])  # (V, V)
    positive = smaller > 0
    return np.where(positive, redundancy / np.where(positive, smaller, 1.0), 0.0)


def redundancy_matrix(model_or_codes, images=None, variables=None, batch_size=256):
    """Mutual information between the variables of one view: redundancy.

    For soft codes `p` of a set of images, block `(k, l)` is
    `P^(k,l) = (1/N) sum_n p[n, k] p[n, l]^T`, the joint distribution of
    variables k and l of the same image, and entry `(k, l)` its mutual
    information (nats). Independent variables give 0; a variable that copies
    another gives up to `log b`. The diagonal holds the entropy of each
    variable's mean distribution, `H(mean_n p[n, k])`, the most any variable
    can share with it (`MI_kl <= min(H_k, H_l)`); plots mask it, and
    `normalize_redundancy` divides by it.

    Plotting this matrix for a model before and after training shows what the
    off-block term did (`plot_redundancy(model, images, reference=initial)`).

    Args:
        model_or_codes: An `IMSVDModel`, or soft codes `(N, K, b)`.
        images: Images for the model, `None` with codes. Defaults to `None`.
        variables: Indices of variables to keep, or `None` for all. Defaults
            to `None`.
        batch_size: Inference batch size. Defaults to `256`.

    Returns:
        A float64 NumPy array `(V, V)` in nats.

    Example:

    ```python
    from keras_imsvd import explain
    redundancy = explain.redundancy_matrix(model, images)  # (K, K)
    off_diagonal = redundancy[~np.eye(len(redundancy), dtype=bool)]
    print("mean redundancy (nats):", off_diagonal.mean())
    ```
    """
    codes = soft_codes(model_or_codes, images, batch_size=batch_size)
    selected = check_variables(variables, codes.shape[1])
    num_images, bin_size = codes.shape[0], codes.shape[2]
    flat = codes[:, selected, :].astype("float64").reshape(num_images, -1)  # (N, Vb)
    num_blocks = len(selected)
    result = np.zeros((num_blocks, num_blocks), dtype="float64")
    for k in range(num_blocks):
        strip = flat[:, k * bin_size : (k + 1) * bin_size].T @ flat / num_images
        blocks = strip.reshape(bin_size, num_blocks, bin_size).transpose(1, 0, 2)
        result[k] = _block_mutual_information(blocks)  # (V,)
    marginals = flat.mean(axis=0).reshape(num_blocks, bin_size)  # (V, b)
    np.fill_diagonal(result, _entropy(marginals))
    return result
