"""The joint cross-entropy of the global batch, from each replica's soft codes.

On TensorFlow and PyTorch the codes are all-gathered and
`keras_imsvd.losses.joint_cross_entropy` runs on every replica. On JAX under a
`keras.distribution`, the loss runs as the three-step plan of DESIGN.md section 3,
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
"""

import keras

from keras_imsvd.distribute.collectives import _jax_distribution
from keras_imsvd.distribute.collectives import all_gather
from keras_imsvd.losses.joint_cross_entropy import _LOG_FLOOR
from keras_imsvd.losses.joint_cross_entropy import _check_codes
from keras_imsvd.losses.joint_cross_entropy import _check_weight
from keras_imsvd.losses.joint_cross_entropy import joint_cross_entropy


def _jax_shard_map():
    import jax

    shard_map = getattr(jax, "shard_map", None)
    if shard_map is None:  # jax < 0.6
        from jax.experimental.shard_map import shard_map
    return shard_map


def _jax_row_block_plan(p1):
    """`(mesh, axis)` for the sharded loss, or `None` to gather the codes."""
    distribution = _jax_distribution()
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
    return mesh, axis


def _jax_row_blocks(p1, p2, weights, mesh, axis):
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec

    batch_size, num_variables, bin_size = p1.shape
    dim = num_variables * bin_size

    def xlogx(x):
        return x * jnp.log(jnp.maximum(x, _LOG_FLOOR))

    def local(p1, p2):
        # p1, p2: this device's (N / n, K, b).
        agreement = jnp.sum(p1 * p2, axis=-1)  # (N / n, K)
        log_agreement = jax.lax.psum(
            jnp.sum(jnp.log(jnp.maximum(agreement, _LOG_FLOOR))), axis
        )
        invariance = -log_agreement / (batch_size * num_variables)
        diagonal = jax.lax.psum(jnp.sum(p1 * p2, axis=0), axis) / batch_size  # (K, b)
        diagonal_loss = jnp.sum(xlogx(diagonal)) / num_variables
        if num_variables == 1:
            return invariance, diagonal_loss, jnp.zeros((), p1.dtype)
        blocks = jax.lax.psum(jnp.einsum("nkb,nkc->kbc", p1, p2), axis)  # (K, b, b)
        flat1 = jnp.reshape(p1, (-1, dim))  # (N / n, D)
        flat2 = jax.lax.all_gather(jnp.reshape(p2, (-1, dim)), axis, tiled=True)
        # (N, D / n): every sample, this device's columns of view 1.
        columns = jax.lax.all_to_all(flat1, axis, 1, 0, tiled=True)
        rows = jnp.matmul(columns.T, flat2) / batch_size  # (D / n, D)
        total = jax.lax.psum(jnp.sum(xlogx(rows)), axis)
        off = total - jnp.sum(xlogx(blocks / batch_size))
        return invariance, diagonal_loss, off / (num_variables * (num_variables - 1))

    batch = PartitionSpec(axis)
    scalar = PartitionSpec()
    invariance, diagonal, off = _jax_shard_map()(
        local,
        mesh=mesh,
        in_specs=(batch, batch),
        out_specs=(scalar, scalar, scalar),
    )(p1, p2)
    terms = {
        "invariance_loss": invariance,
        "diagonal_loss": diagonal,
        "off_diagonal_loss": off,
    }
    total = (
        weights["invariance_weight"] * invariance
        + weights["diagonal_weight"] * diagonal
        + weights["off_diagonal_weight"] * off
    )
    return total, terms


def global_joint_cross_entropy(
    p1,
    p2,
    invariance_weight=1.0,
    diagonal_weight=1.0,
    off_diagonal_weight=1.0,
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

    Returns:
        A tuple `(total, terms)` as `joint_cross_entropy` returns it: the
        float32 scalar loss and a dict of the unweighted float32 terms
        `"invariance_loss"`, `"diagonal_loss"` and `"off_diagonal_loss"`.

    Raises:
        TypeError: if the codes are not floating, or a weight is not a number.
        ValueError: if the shapes differ or are not rank 3, the global batch
            holds fewer than 2 samples, or a weight is negative.
    """
    weights = {
        "invariance_weight": invariance_weight,
        "diagonal_weight": diagonal_weight,
        "off_diagonal_weight": off_diagonal_weight,
    }
    plan = _jax_row_block_plan(p1) if hasattr(p1, "shape") else None
    if plan is None:
        return joint_cross_entropy(all_gather(p1), all_gather(p2), **weights)
    _check_codes(p1, p2)
    for name, value in weights.items():
        _check_weight(name, value)
    p1 = keras.ops.cast(p1, "float32")
    p2 = keras.ops.cast(p2, "float32")
    return _jax_row_blocks(p1, p2, weights, *plan)
