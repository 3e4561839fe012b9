"""Input checks of the IMSVD loss, shared by its function, its `Loss` and the model."""

import math
import sys

import keras
import numpy as np
from keras import ops

# How far the sum of a row of soft codes may stray from 1. The clamp of
# `SoftVariableDiscretization` adds at most `b * epsilon` (1e-8 each), and
# rounding the codes to bfloat16 moves a row's sum by up to about 2^-9.
SIMPLEX_TOLERANCE = 1e-2


def check_codes(p1, p2):
    """Raises unless `p1`, `p2` are floating `(N, K, b)` tensors, `N >= 2`."""
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


def _is_traced(x):
    """Whether `x` stands for values being traced or compiled, not values at hand."""
    if keras.backend.is_keras_tensor(x):
        return True
    # torch.compile runs this Python code to trace it, with tensors that look
    # concrete; reading them would split the compiled graph. torch is already
    # loaded whenever its tensors reach here, so it is looked up, not imported.
    compiler = getattr(sys.modules.get("torch"), "compiler", None)
    if compiler is not None and compiler.is_compiling():
        return True
    # Keras' shape inference on PyTorch runs on tensors without storage.
    return getattr(getattr(x, "device", None), "type", None) == "meta"


def _summary(p):
    """`(smallest entry, largest |row sum - 1|, sum)` of `p`, read on the host.

    Two passes over the codes, three numbers read back: a NaN or an infinity
    anywhere makes the sum non-finite. `None` where `p` holds no
    values yet: a JAX tracer or a TensorFlow graph tensor refuses the
    conversion to NumPy.
    """
    if _is_traced(p):
        return None
    p = ops.stop_gradient(p)
    sums = ops.sum(p, axis=-1)  # (N, K)
    summary = (ops.min(p), ops.max(ops.abs(sums - 1.0)), ops.sum(sums))
    try:
        return [float(ops.convert_to_numpy(value)) for value in summary]
    except (TypeError, NotImplementedError):
        return None


def check_probabilities(name, p):
    """Raises unless every row `p[n, k]` is a probability distribution over bins.

    Checked only where `p` holds values (eager execution): entries finite and
    `>= 0`, each row summing to 1 within `SIMPLEX_TOLERANCE`. Inside `jit`,
    `tf.function` or `torch.compile` the codes are not read, and nothing is
    checked.
    """
    summary = _summary(p)
    if summary is None:
        return
    minimum, deviation, total = summary
    if not math.isfinite(total):
        count = int(np.sum(~np.isfinite(ops.convert_to_numpy(p))))
        raise ValueError(
            f"`{name}` must hold finite probabilities. "
            f"Received: {name} with {count} NaN or infinite entries"
        )
    if minimum < 0:
        raise ValueError(
            f"`{name}` must hold probabilities >= 0 (soft codes, not logits). "
            f"Received: min({name})={minimum:.6g}"
        )
    if deviation > SIMPLEX_TOLERANCE:
        sums = np.sum(ops.convert_to_numpy(p), axis=-1)
        raise ValueError(
            f"Each row {name}[n, k, :] must sum to 1 (within {SIMPLEX_TOLERANCE}): "
            "the codes of each variable are a distribution over its bins. "
            f"Received: row sums of {name} from {sums.min():.6g} to {sums.max():.6g}"
        )
