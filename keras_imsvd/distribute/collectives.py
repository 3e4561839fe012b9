"""Cross-replica collectives for the soft codes and the BatchNorm statistics.

IMSVD estimates its joint distribution over the *global* batch, so under data
parallelism the loss must see every replica's soft codes.

- JAX with a `keras.distribution` set: `compute_loss` already sees the global
  batch as one sharded array. `all_gather` only constrains its layout to
  replicated, so that XLA gathers the `(N, D)` codes instead of all-reducing
  the `(D, D)` joint matrix that each device would otherwise build from its own
  rows (`global_joint_cross_entropy` goes further and splits the matrix into
  row blocks).
- TensorFlow under a `tf.distribute` strategy, and PyTorch under
  `torch.distributed`: `compute_loss` runs once per replica on the local batch,
  and the codes are all-gathered with gradients.

Every replica then computes the same global loss. The gradient of a gathered
tensor is summed over replicas on its way back, so each replica's parameter
gradient is `num_replicas` times its share of the global gradient; the two
backends correct this where the replicas' gradients are combined:
TensorFlow's optimizer sums them, so `scale_loss_for_replicas` divides the loss
by the replica count; on PyTorch, `SynchronizeReplicas` averages them.
"""

import keras

from keras_imsvd.distribute import _jax
from keras_imsvd.distribute import _torch


def num_replicas():
    """Number of replicas whose `compute_loss` sees only a slice of the batch.

    Returns:
        `1` on JAX (whose `compute_loss` sees the global batch) and outside any
        distribution; the replica count of the TensorFlow strategy in the
        current replica context; the `torch.distributed` world size.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None:
            return 1
        return context.num_replicas_in_sync
    if backend == "torch":
        return _torch.world_size()
    return 1


def _jax_layout(x, axes):
    """Constrains the layout of `x` on the mesh of the JAX distribution."""
    layout = keras.distribution.TensorLayout(axes, _jax.distribution().device_mesh)
    return keras.distribution.distribute_tensor(x, layout)


def _tf_all_gather(x):
    import tensorflow as tf

    gathered = tf.distribute.get_replica_context().all_gather(x, axis=0)
    # The gather loses the static shape; the per-replica batch sizes may differ,
    # the other axes do not.
    return tf.ensure_shape(gathered, [None] + list(x.shape[1:]))


def all_gather(x):
    """Concatenates `x` over replicas along axis 0, with gradients.

    On TensorFlow and PyTorch the local tensors of all replicas are gathered in
    replica order. On JAX under a `keras.distribution`, `x` already holds the
    global batch and is constrained to be replicated on every device, so XLA
    all-gathers it rather than all-reducing whatever is computed from it.

    Args:
        x: The local tensor `(n, ...)`.

    Returns:
        The global tensor `(n * replicas, ...)`; `x` itself where there is a
        single replica.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        if _jax.distribution() is None:
            return x
        return _jax_layout(x, [None] * len(x.shape))
    if num_replicas() == 1:
        return x
    if backend == "tensorflow":
        return _tf_all_gather(x)
    if backend == "torch":
        return _torch.all_gather(x)
    return x


def all_reduce_sum(x):
    """Sums `x` over replicas, with gradients.

    What `SyncBatchNormalization` reduces: each replica's sums over its own
    samples become the sums over the global batch. The gradient of the result
    reaches every replica's `x` summed over replicas, as every replica uses the
    sum (`torch.nn.SyncBatchNorm` all-reduces its gradients alike).

    - TensorFlow, in the replica context of a `tf.distribute` strategy:
      `ReplicaContext.all_reduce(SUM)`, whose gradient is the all-reduce of
      the gradient.
    - PyTorch under `torch.distributed`: an autograd all-reduce over the
      processes.
    - JAX: `x` itself. Under a `keras.distribution`, a tensor reduced over the
      batch axis already holds the sum over the global batch (XLA inserts the
      all-reduce).

    Args:
        x: The local tensor.

    Returns:
        The sum of `x` over replicas; `x` itself where there is a single
        replica.
    """
    if num_replicas() == 1:
        return x
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, x)
    if backend == "torch":
        return _torch.all_reduce_sum(x)
    return x


def scale_loss_for_replicas(loss):
    """Scales a global loss so that combining replica gradients gives its own.

    `compute_loss` returns the same global loss on every replica. On
    TensorFlow, Keras' optimizer sums the replicas' gradients and Keras logs the
    loss multiplied back by the replica count (its convention for per-replica
    losses), so the loss is divided by the replica count here: the summed
    gradient is then exactly the single-device gradient of the global batch,
    regularization losses included, and the logged loss is the global loss. On
    JAX (one program sees the global batch) and on PyTorch (where
    `SynchronizeReplicas` averages the gradients) the loss is returned as is.

    Args:
        loss: The scalar global loss of the step.

    Returns:
        The loss to return from `compute_loss`.
    """
    if keras.backend.backend() != "tensorflow":
        return loss
    replicas = num_replicas()
    if replicas == 1:
        return loss
    return loss * keras.ops.cast(1.0 / replicas, loss.dtype)
