"""Input checks of the IMSVD loss, shared by its function, its `Loss` and the model."""

import math

import keras


def check_weight(name, value):
    """Raises unless `value` is a finite number `>= 0` (a weight of a term)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value}"
        )


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

