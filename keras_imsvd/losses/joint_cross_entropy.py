"""The IMSVD joint cross-entropy loss, as a pure `keras.ops` function."""

import math

import keras
from keras import ops

# Floor inside logarithms. Soft codes are clamped at `epsilon` (1e-8 by default),
# so every probability the loss takes a log of is at least 1e-16 and this floor is
# never reached by the model's own codes; it only keeps hand-made codes with exact
# zeros finite (0 * log(floor) == 0, so zero entries drop out of P log P).
_LOG_FLOOR = 1e-30


def _check_codes(p1, p2):
    for name, p in (("p1", p1), ("p2", p2)):
        dtype = keras.backend.standardize_dtype(getattr(p, "dtype", None) or "none")
        if "float" not in dtype:
            raise TypeError(
                f"`{name}` must be a floating tensor of soft codes. "
                f"Received: {name}.dtype={dtype}"
            )
        if len(p.shape) != 3:
            raise ValueError(
                f"`{name}` must have shape (batch_size, num_variables, bin_size). "
                f"Received: {name}.shape={tuple(p.shape)}"
            )
    if tuple(p1.shape) != tuple(p2.shape):
        raise ValueError(
            "Both views must have the same shape. "
            f"Received: p1.shape={tuple(p1.shape)}, p2.shape={tuple(p2.shape)}"
        )
    batch_size = p1.shape[0]
    if batch_size is not None and batch_size < 2:
        raise ValueError(
            "A joint distribution cannot be estimated from a single sample: the "
            "batch must hold at least 2 samples (use `drop_remainder=True` when "
            f"batching). Received: batch_size={batch_size}"
        )


def _check_weight(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value}"
        )


def _xlogx(x):
    # `x + floor` rather than `maximum(x, floor)`: the same value for every
    # x >= 1e-22 (the floor is below half an ulp of x in float32) and for x = 0,
    # and a backward pass without the comparison masks of `maximum`, which cost
    # several passes over the (D, D) matrix in eager PyTorch.
    return x * ops.log(x + _LOG_FLOOR)


def invariance_term(p1, p2):
    """`L_inv = -(1/(N K)) sum_n sum_k log(sum_j p1[n,k,j] p2[n,k,j])`."""
    agreement = ops.sum(p1 * p2, axis=-1)  # (N, K)
    return -ops.mean(ops.log(ops.maximum(agreement, _LOG_FLOOR)))


def diagonal_term(p1, p2):
    """`L_dia = (1/K) sum_i P_ii log P_ii`, from the D diagonal entries only."""
    num_variables = p1.shape[1]
    diagonal = ops.mean(p1 * p2, axis=0)  # (K, b): P_ii for i = (k, j)
    return ops.sum(_xlogx(diagonal)) / num_variables


def off_diagonal_term(p1, p2):
    """`L_off = 1/(K (K-1)) sum_{k != l} sum_ij P^(k,l)_ij log P^(k,l)_ij`.

    Computed as the `P log P` sum over the whole matrix minus the sum over the K
    diagonal blocks, so no off-block entry is ever copied out of P. With K = 1
    there is no pair of distinct variables and the term is 0.
    """
    batch_size, num_variables, bin_size = p1.shape[0], p1.shape[1], p1.shape[2]
    if num_variables == 1:
        return ops.zeros((), dtype=p1.dtype)
    n = ops.cast(ops.shape(p1)[0] if batch_size is None else batch_size, p1.dtype)
    dim = num_variables * bin_size
    flat1 = ops.reshape(p1, (-1, dim))  # (N, D)
    flat2 = ops.reshape(p2, (-1, dim))  # (N, D)
    # 1/N scales the (N, D) codes, not the (D, D) product: D / N times fewer
    # multiplications, forward and backward.
    joint = ops.matmul(ops.transpose(flat1 / n), flat2)  # (D, D)
    diagonal_blocks = ops.einsum("nkb,nkc->kbc", p1, p2) / n  # (K, b, b)
    total = ops.sum(_xlogx(joint)) - ops.sum(_xlogx(diagonal_blocks))
    return total / (num_variables * (num_variables - 1))


def joint_cross_entropy(
    p1,
    p2,
    invariance_weight=1.0,
    diagonal_weight=1.0,
    off_diagonal_weight=1.0,
):
    """Joint cross-entropy loss of IMSVD, from the soft codes of two views.

    With `p1`, `p2` the soft codes of shape `(N, K, b)` and
    `P = (1/N) sum_n vec(p1[n]) vec(p2[n])^T` the `(D, D)` joint probability
    matrix (`D = K b`, K x K blocks of b x b, each block a joint distribution):

    - `L_inv = -(1/(N K)) sum_n sum_k log(sum_j p1[n,k,j] p2[n,k,j])`
      (both views fall into the same bin: invariance);
    - `L_dia = (1/K) sum_i P_ii log P_ii`
      (agreement spread uniformly over the bins: non-trivial features);
    - `L_off = 1/(K (K-1)) sum_{k != l} sum_ij P^(k,l)_ij log P^(k,l)_ij`
      (different variables independent: non-redundant features).
      With a single variable (K = 1) there is no off-block pair and `L_off = 0`.

    `L = invariance_weight L_inv + diagonal_weight L_dia
    + off_diagonal_weight L_off`. The within-block off-diagonal entries of the
    diagonal blocks enter no term. For `b >= 3`, `L >= -3 log b` (up to the
    clamp of the codes), reached by identical one-hot views spread uniformly and
    independently over the bins.

    The loss is computed in float32 whatever the dtype of the codes (mixed
    precision). `L_dia` uses only the D diagonal entries and `L_off` the sum of
    `P log P` over the whole matrix minus the diagonal blocks, so no off-block
    entry is gathered into a copy.

    Args:
        p1: Soft codes of the first view, a floating tensor of shape
            `(N, K, b)` with `N >= 2`.
        p2: Soft codes of the second view, same shape as `p1`.
        invariance_weight: Weight of `L_inv`, `>= 0`. Defaults to `1.0`.
        diagonal_weight: Weight of `L_dia`, `>= 0`. Defaults to `1.0`.
        off_diagonal_weight: Weight of `L_off`, `>= 0`. Defaults to `1.0`.

    Returns:
        A tuple `(total, terms)`: the float32 scalar loss and a dict with the
        unweighted float32 scalars `"invariance_loss"`, `"diagonal_loss"` and
        `"off_diagonal_loss"`.

    Raises:
        TypeError: if the codes are not floating, or a weight is not a number.
        ValueError: if the shapes differ or are not rank 3, the batch holds
            fewer than 2 samples, or a weight is negative.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> z = np.random.default_rng(0).normal(size=(8, 4 * 16)).astype("float32")
    >>> codes = keras_imsvd.layers.SoftVariableDiscretization(bin_size=16)(z)
    >>> total, terms = keras_imsvd.losses.joint_cross_entropy(codes, codes)
    >>> sorted(terms)
    ['diagonal_loss', 'invariance_loss', 'off_diagonal_loss']

    References:
        Niu, Xia, Shan, Wang. "Information-Maximized Soft Variable
        Discretization for Self-Supervised Image Representation Learning".
        https://arxiv.org/abs/2501.03469
    """
    p1 = p1 if hasattr(p1, "dtype") else ops.convert_to_tensor(p1)
    p2 = p2 if hasattr(p2, "dtype") else ops.convert_to_tensor(p2)
    _check_codes(p1, p2)
    for name, value in (
        ("invariance_weight", invariance_weight),
        ("diagonal_weight", diagonal_weight),
        ("off_diagonal_weight", off_diagonal_weight),
    ):
        _check_weight(name, value)
    p1 = ops.cast(p1, "float32")
    p2 = ops.cast(p2, "float32")
    terms = {
        "invariance_loss": invariance_term(p1, p2),
        "diagonal_loss": diagonal_term(p1, p2),
        "off_diagonal_loss": off_diagonal_term(p1, p2),
    }
    total = (
        invariance_weight * terms["invariance_loss"]
        + diagonal_weight * terms["diagonal_loss"]
        + off_diagonal_weight * terms["off_diagonal_loss"]
    )
    return total, terms
