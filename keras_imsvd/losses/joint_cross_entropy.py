"""The IMSVD joint cross-entropy loss, as a pure `keras.ops` function."""

from keras import ops

from keras_imsvd._validation import check_weight
from keras_imsvd.losses._checks import check_codes
from keras_imsvd.losses._checks import check_probabilities
from keras_imsvd.losses.batch_collectives import BatchCollectives

# Floor inside logarithms. Soft codes are clamped at `epsilon` (1e-8 by default),
# so every probability the loss takes a log of is at least 1e-16 and this floor is
# never reached by the model's own codes; it only keeps hand-made codes with exact
# zeros finite (0 * log(floor) == 0, so zero entries drop out of P log P).
_LOG_FLOOR = 1e-30


_ONE_REPLICA = BatchCollectives()


def _xlogx(x):
    # `x + floor` rather than `maximum(x, floor)`: the same value for every
    # x >= 1e-22 (the floor is below half an ulp of x in float32) and for x = 0,
    # and a backward pass without the comparison masks of `maximum`, which cost
    # several passes over the (D, D) matrix in eager PyTorch.
    return x * ops.log(x + _LOG_FLOOR)


def invariance_term(p1, p2, collectives=None):
    """`L_inv = -(1/(N K)) sum_n sum_k log(sum_j p1[n,k,j] p2[n,k,j])`.

    Args:
        p1: Soft codes of view 1 `(n, K, b)`: the whole batch, or this
            replica's rows of it.
        p2: Soft codes of view 2, same shape.
        collectives: A `BatchCollectives` that sums the statistic over the
            replicas holding the batch. Defaults to `None`: the codes are the
            whole batch.

    Returns:
        The scalar term, the same on every replica.
    """
    collectives = collectives or _ONE_REPLICA
    num_samples, num_variables = collectives.num_samples(p1), p1.shape[1]
    agreement = ops.sum(p1 * p2, axis=-1)  # (n, K)
    log_agreement = ops.sum(ops.log(ops.maximum(agreement, _LOG_FLOOR)))
    return -collectives.sum(log_agreement) / (num_samples * num_variables)


def diagonal_term(p1, p2, collectives=None):
    """`L_dia = (1/K) sum_i P_ii log P_ii`, from the D diagonal entries only.

    Args:
        p1: Soft codes of view 1 `(n, K, b)`: the whole batch, or this
            replica's rows of it.
        p2: Soft codes of view 2, same shape.
        collectives: A `BatchCollectives` that sums the diagonal over the
            replicas holding the batch. Defaults to `None`: the codes are the
            whole batch.

    Returns:
        The scalar term, the same on every replica.
    """
    collectives = collectives or _ONE_REPLICA
    num_samples, num_variables = collectives.num_samples(p1), p1.shape[1]
    # (K, b): P_ii for i = (k, j).
    diagonal = collectives.sum(ops.sum(p1 * p2, axis=0)) / num_samples
    return ops.sum(_xlogx(diagonal)) / num_variables


def off_diagonal_term(p1, p2, collectives=None):
    """`L_off = 1/(K (K-1)) sum_{k != l} sum_ij P^(k,l)_ij log P^(k,l)_ij`.

    Computed as the `P log P` sum over the whole matrix minus the sum over the K
    diagonal blocks, so no off-block entry is ever copied out of P. Over several
    replicas, each forms only its block of rows of P, `(D / r, D)`, from every
    sample, and the sums are summed. With K = 1 there is no pair of distinct
    variables and the term is 0.

    Args:
        p1: Soft codes of view 1 `(n, K, b)`: the whole batch, or this
            replica's rows of it.
        p2: Soft codes of view 2, same shape.
        collectives: A `BatchCollectives` that gathers the codes and sums the
            statistics over the replicas holding the batch. Defaults to
            `None`: the codes are the whole batch.

    Returns:
        The scalar term, the same on every replica.
    """
    num_variables, bin_size = p1.shape[1], p1.shape[2]
    if num_variables == 1:
        return ops.zeros((), dtype=p1.dtype)
    collectives = collectives or _ONE_REPLICA
    num_samples = collectives.num_samples(p1)
    dim = num_variables * bin_size
    # 1/N scales the (n, D) codes, not the product: D / N times fewer
    # multiplications, forward and backward.
    flat1 = ops.reshape(p1, (-1, dim)) / num_samples  # (n, D)
    flat2 = ops.reshape(p2, (-1, dim))  # (n, D)
    columns = collectives.all_to_all(flat1)  # (N, D / r)
    rows = collectives.all_gather(flat2)  # (N, D)
    joint = ops.matmul(ops.transpose(columns), rows)  # (D / r, D): rows of P
    blocks = collectives.sum(ops.einsum("nkb,nkc->kbc", p1, p2)) / num_samples
    # blocks: (K, b, b), the diagonal blocks of P.
    total = collectives.sum(ops.sum(_xlogx(joint))) - ops.sum(_xlogx(blocks))
    return total / (num_variables * (num_variables - 1))


def _loss_terms(collectives):
    def terms(p1, p2):
        return {
            "invariance_loss": invariance_term(p1, p2, collectives),
            "diagonal_loss": diagonal_term(p1, p2, collectives),
            "off_diagonal_loss": off_diagonal_term(p1, p2, collectives),
        }

    return terms


def joint_cross_entropy(
    p1,
    p2,
    invariance_weight=1.0,
    diagonal_weight=1.0,
    off_diagonal_weight=1.0,
    collectives=None,
    validate=True,
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

    The codes must be probabilities: each row `p[n, k, :]` a distribution over
    the bins. Where the codes hold values (eager execution), this is checked:
    entries finite and `>= 0` (a negative entry would make the logarithms
    NaN), each row summing to 1 within `1e-2` (the clamp of
    `SoftVariableDiscretization` and 16-bit rounding stay well within it).
    Inside `jax.jit`, `tf.function` or `torch.compile` the codes are not read,
    so the check costs nothing there.

    Args:
        p1: Soft codes of the first view, a floating tensor of shape
            `(N, K, b)` with `N >= 2`.
        p2: Soft codes of the second view, same shape as `p1`.
        invariance_weight: Weight of `L_inv`, `>= 0`. Defaults to `1.0`.
        diagonal_weight: Weight of `L_dia`, `>= 0`. Defaults to `1.0`.
        off_diagonal_weight: Weight of `L_off`, `>= 0`. Defaults to `1.0`.
        collectives: A `BatchCollectives` for codes split over replicas: its
            `run` hands each replica its rows, and the term functions combine
            their statistics through it. Defaults to `None`: the codes are
            the whole batch, on one replica.
        validate: In eager execution, check that the codes are probabilities
            (finite, non-negative, rows summing to 1). Traced and compiled
            code is never checked. `IMSVDModel` passes `False`: its codes come
            from its own softmax, and non-finite ones mean that training
            diverged, which a non-finite loss reports. Defaults to `True`.

    Returns:
        A tuple `(total, terms)`: the float32 scalar loss and a dict with the
        unweighted float32 scalars `"invariance_loss"`, `"diagonal_loss"` and
        `"off_diagonal_loss"`.

    Raises:
        TypeError: if the codes are not floating, or a weight is not a number.
        ValueError: if the shapes differ or are not rank 3, the batch holds
            fewer than 2 samples, or a weight is negative; in eager execution,
            if the codes hold NaN, infinite or negative entries, or a row of
            the codes does not sum to 1 (unless `validate=False`).

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
    check_codes(p1, p2)
    for name, value in (
        ("invariance_weight", invariance_weight),
        ("diagonal_weight", diagonal_weight),
        ("off_diagonal_weight", off_diagonal_weight),
    ):
        check_weight(name, value)
    p1 = ops.cast(p1, "float32")
    p2 = ops.cast(p2, "float32")
    if validate:
        check_probabilities("p1", p1)
        check_probabilities("p2", p2)
    collectives = collectives or _ONE_REPLICA
    terms = collectives.run(_loss_terms(collectives), p1, p2)
    total = (
        invariance_weight * terms["invariance_loss"]
        + diagonal_weight * terms["diagonal_loss"]
        + off_diagonal_weight * terms["off_diagonal_loss"]
    )
    return total, terms
