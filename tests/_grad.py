"""Value-and-gradient and jit for tests, one branch per backend.

Library code never branches on the backend outside `distribute/`; tests need the
backend's own autodiff to compare gradients with NumPy.
"""

import keras
import numpy as np


def value_and_grad(fn, *arrays):
    """Returns `fn(*arrays)` and its gradients with respect to every array."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        args = [jax.numpy.asarray(a) for a in arrays]
        value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)
        return float(value), [np.asarray(g) for g in grads]
    if backend == "tensorflow":
        import tensorflow as tf

        args = [tf.Variable(a) for a in arrays]
        with tf.GradientTape() as tape:
            value = fn(*args)
        grads = tape.gradient(value, args)
        return float(value), [g.numpy() for g in grads]
    import torch

    args = [torch.tensor(a, requires_grad=True) for a in arrays]
    value = fn(*args)
    value.backward()
    return float(value.detach()), [a.grad.numpy() for a in args]


def jit(fn):
    """Compiles `fn` with the backend's compiler (XLA, XLA, torch.compile)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    import torch

    return torch.compile(fn)
