"""JAX pieces shared by the collectives and the sharded loss."""

import keras


def distribution():
    """The `keras.distribution` in force on JAX, or `None`."""
    if keras.backend.backend() != "jax":
        return None
    return keras.distribution.distribution()


def shard_map():
    """`jax.shard_map`, from where this JAX version keeps it."""
    import jax

    function = getattr(jax, "shard_map", None)
    if function is None:  # jax < 0.6
        from jax.experimental.shard_map import shard_map as function
    return function
