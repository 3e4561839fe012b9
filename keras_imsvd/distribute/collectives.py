"""Cross-replica collectives for the soft codes.

IMSVD estimates its joint distribution over the *global* batch. On JAX with
`keras.distribution.DataParallel`, `compute_loss` already sees the global batch
and these functions are the identity. On TensorFlow under a `tf.distribute`
strategy, and on PyTorch under `torch.distributed`, `compute_loss` runs once per
replica on the local batch, so the codes are all-gathered (with gradients)
before the joint matrix is formed.
"""

import keras


def num_replicas():
    """Number of replicas that each hold a slice of the global batch.

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
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size()
    return 1


def all_gather(x):
    """Concatenates `x` over replicas along axis 0, with gradients.

    Args:
        x: The local tensor `(n, ...)`.

    Returns:
        The global tensor `(n * replicas, ...)`, in replica order; `x` itself
        where there is a single replica.
    """
    if num_replicas() == 1:
        return x
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_replica_context().all_gather(x, axis=0)
    if backend == "torch":
        import torch
        import torch.distributed.nn.functional as dist_functional

        return torch.cat(dist_functional.all_gather(x), dim=0)
    return x
