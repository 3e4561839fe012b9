"""`BatchCollectives`: how the loss terms combine the rows of a split batch."""

from keras import ops


class BatchCollectives:
    """The collectives through which the loss terms see the whole batch.

    Every term of the joint cross-entropy is a sum over the batch, so it can be
    computed from the rows held by several replicas: each replica forms its
    share of a statistic from its own rows, the shares are summed over
    replicas, and the formula is applied to the sum. The term functions of
    `keras_imsvd.losses` are written this way and take the collectives as an
    argument:

    - the invariance agreement: `sum(log(sum_j p1 p2))` over the rows, summed;
    - the diagonal `P_ii` and the diagonal blocks `P^(k,k)`: sums over the
      rows, summed;
    - `sum P log P`: each replica forms one block of rows of `P` from every
      sample (`all_to_all` of view 1, `all_gather` of view 2), and the sums of
      the blocks are summed.

    This class is the batch on one replica: every collective is the identity,
    and a row block of `P` is the whole matrix. A data-parallel caller
    subclasses it with its backend's collectives; `keras_imsvd.distribute`
    does so for JAX's `shard_map`.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> p = np.full((4, 2, 3), 1 / 3, dtype="float32")
    >>> one_replica = keras_imsvd.losses.BatchCollectives()
    >>> term = keras_imsvd.losses.diagonal_term(p, p, collectives=one_replica)
    >>> round(float(term), 4)  # (1/K) sum_i P_ii log P_ii, P_ii = 1/9
    -0.7324
    """

    def num_samples(self, p):
        """The number of samples `N` of the whole batch, given this replica's rows.

        Args:
            p: This replica's rows `(n, ...)`.

        Returns:
            A Python `int` where the shape is static, else a scalar tensor of
            `p`'s dtype.
        """
        if p.shape[0] is not None:
            return p.shape[0]
        return ops.cast(ops.shape(p)[0], p.dtype)

    def sum(self, x):
        """Sums `x` over replicas; every replica receives the sum."""
        return x

    def all_gather(self, x):
        """Every replica's rows of `x` `(n, ...)`, in order: `(N, ...)`."""
        return x

    def all_to_all(self, x):
        """Every replica's rows of this replica's share of the columns of `x`.

        Args:
            x: This replica's rows `(n, D)`.

        Returns:
            `(N, D / r)` over `r` replicas: rows of all samples, columns
            `[i D / r, (i + 1) D / r)` on replica `i`.
        """
        return x

    def run(self, fn, p1, p2):
        """Calls `fn(p1, p2)` on each replica's rows of the codes.

        Args:
            fn: A function of the two views' rows, whose result is the same on
                every replica (it has summed its statistics over replicas).
            p1: The codes of view 1, as the caller holds them.
            p2: The codes of view 2, same shape.

        Returns:
            The result of `fn`.
        """
        return fn(p1, p2)
