"""The joint cross-entropy of the global batch, from each replica's soft codes.

On TensorFlow and PyTorch the codes are all-gathered and
`keras_imsvd.losses.joint_cross_entropy` runs on every replica. On JAX under a
`keras.distribution`, the loss runs as the three-step plan of docs/design.md
("The loss over several replicas"),
with `shard_map` over the data-parallel mesh axis (`n` devices, `N` samples,
`D = K b`):

1. the codes of view 2 are all-gathered (`N x D`), and those of view 1 are
   exchanged all-to-all so that each device holds all `N` rows of its `D / n`
   columns;
2. each device forms only its row block of the joint matrix, `(D / n, D)`,
   and that block's `P log P` sum;
3. an all-reduce of a few scalars (and of the `D` diagonal entries and the
   `K b^2` diagonal-block entries) finishes.

The backward pass mirrors it: a reduce-scatter of `N x D` and an all-to-all.
No device forms, or communicates, the whole `D x D` matrix, and no matmul is
repeated: each device does `1/n` of the work.

The formulas are those of `keras_imsvd.losses`: its term functions take a
`BatchCollectives`, and this module supplies one made of `jax.lax` collectives
(`psum`, `all_gather`, `all_to_all`) that runs the terms under `shard_map`.
"""

import keras

from keras_imsvd.distribute import _jax
from keras_imsvd.distribute.collectives import all_gather
from keras_imsvd.losses.batch_collectives import BatchCollectives
from keras_imsvd.losses.joint_cross_entropy import joint_cross_entropy


class _RowBlocks(BatchCollectives):
    """The collectives of the loss terms inside `shard_map` over a mesh axis."""

    def __init__(self, mesh, axis):
        self.mesh = mesh
        self.axis = axis
        self.devices = mesh.shape[axis]

    def num_samples(self, p):
        return p.shape[0] * self.devices

    def sum(self, x):
        import jax

        return jax.lax.psum(x, self.axis)

    def all_gather(self, x):
        import jax

        return jax.lax.all_gather(x, self.axis, tiled=True)

    def all_to_all(self, x):
        import jax

        return jax.lax.all_to_all(x, self.axis, 1, 0, tiled=True)

    def run(self, fn, p1, p2):
        from jax.sharding import PartitionSpec

        batch = PartitionSpec(self.axis)
        return _jax.shard_map()(
            fn, mesh=self.mesh, in_specs=(batch, batch), out_specs=PartitionSpec()
        )(p1, p2)


def _jax_row_blocks(p1):
    """The `_RowBlocks` of the JAX distribution, or `None` to gather the codes."""
    distribution = _jax.distribution()
    if distribution is None or len(p1.shape) != 3 or None in tuple(p1.shape):
        return None
    axis = distribution.batch_dim_name
    layout = keras.distribution.TensorLayout(
        [axis, None, None], distribution.device_mesh
    )
    mesh = layout.backend_layout.mesh
    devices = mesh.shape[axis]
    batch_size, num_variables, bin_size = p1.shape
    if devices == 1 or batch_size % devices or (num_variables * bin_size) % devices:
        return None
    return _RowBlocks(mesh, axis)


def global_joint_cross_entropy(
    p1,
    p2,
    invariance_weight=1.0,
    diagonal_weight=1.0,
    off_diagonal_weight=1.0,
    validate=True,
):
    """`keras_imsvd.losses.joint_cross_entropy` over the global batch.

    Takes the soft codes as `compute_loss` receives them: each replica's own
    on TensorFlow and PyTorch, the global (sharded) batch on JAX. The result,
    and its gradients, equal `joint_cross_entropy` of the concatenated global
    batch on one device.

    - TensorFlow, PyTorch, or JAX without a distribution: the codes are
      all-gathered (`all_gather`, with gradients) and `joint_cross_entropy`
      runs on them.
    - JAX under a `keras.distribution` with `N` and `D` multiples of the device
      count `n`: the three-step plan of this module's docstring. It moves
      `N x D` numbers each way where XLA, left to itself, all-reduces the
      `D x D` joint matrix (4x more with the published ImageNet settings,
      `D = 8160`, `N = 2048`). Otherwise the codes are replicated on every
      device.

    Args:
        p1: Soft codes of the first view, `(n, K, b)`.
        p2: Soft codes of the second view, same shape.
        invariance_weight: Weight of `L_inv`, `>= 0`. Defaults to `1.0`.
        diagonal_weight: Weight of `L_dia`, `>= 0`. Defaults to `1.0`.
        off_diagonal_weight: Weight of `L_off`, `>= 0`. Defaults to `1.0`.
        validate: See `joint_cross_entropy`. Defaults to `True`.

    Returns:
        A tuple `(total, terms)` as `joint_cross_entropy` returns it: the
        float32 scalar loss and a dict of the unweighted float32 terms
        `"invariance_loss"`, `"diagonal_loss"` and `"off_diagonal_loss"`.

    Raises:
        TypeError: if the codes are not floating, or a weight is not a number.
        ValueError: if the shapes differ or are not rank 3, the global batch
            holds fewer than 2 samples, or a weight is negative; in eager
            execution, if the codes are not probabilities (see
            `joint_cross_entropy`).
    """
    weights = {
        "invariance_weight": invariance_weight,
        "diagonal_weight": diagonal_weight,
        "off_diagonal_weight": off_diagonal_weight,
        "validate": validate,
    }
    row_blocks = _jax_row_blocks(p1) if hasattr(p1, "shape") else None
    if row_blocks is None:
        return joint_cross_entropy(all_gather(p1), all_gather(p2), **weights)
    return joint_cross_entropy(p1, p2, **weights, collectives=row_blocks)
