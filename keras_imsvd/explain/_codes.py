"""Private helpers: soft codes from a model or an array, checks, conversions."""

import math

import numpy as np


def to_numpy(x):
    """A NumPy array from a NumPy array, a backend tensor or a `tf.Tensor`."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch.Tensor, possibly requiring grad
        x = x.detach().cpu()
    if hasattr(x, "__array__") or isinstance(x, (list, tuple, int, float)):
        return np.asarray(x)
    from keras import ops

    return ops.convert_to_numpy(x)


def check_soft_codes(codes, name="codes"):
    """Checks soft codes `(N, K, b)` and returns them as a NumPy array."""
    codes = to_numpy(codes)
    if codes.ndim != 3:
        raise ValueError(
            f"`{name}` must be soft codes of shape (num_images, num_variables, "
            f"bin_size). Received: {name}.shape={codes.shape}"
        )
    if not np.issubdtype(codes.dtype, np.floating):
        raise TypeError(
            f"`{name}` must be floating soft codes. "
            f"Received: {name}.dtype={codes.dtype}"
        )
    return codes


def check_hard_codes(codes, name="codes"):
    """Checks hard codes `(N, K)` of bin indices and returns a NumPy array."""
    codes = to_numpy(codes)
    if codes.ndim != 2:
        raise ValueError(
            f"`{name}` must be hard codes of shape (num_images, num_variables). "
            f"Received: {name}.shape={codes.shape}"
        )
    if not np.issubdtype(codes.dtype, np.integer):
        raise TypeError(
            f"`{name}` must hold integer bin indices (use `model.codes(images)`). "
            f"Received: {name}.dtype={codes.dtype}"
        )
    if codes.size and codes.min() < 0:
        raise ValueError(
            f"`{name}` must hold bin indices >= 0. Received: min={codes.min()}"
        )
    return codes


def check_variables(variables, num_variables, name="variables"):
    """Reads `variables` (None, an int or a sequence) into a list of indices."""
    if variables is None:
        return list(range(num_variables))
    if isinstance(variables, (int, np.integer)) and not isinstance(variables, bool):
        variables = [variables]
    try:
        selected = [int(v) for v in variables]
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be None, an integer or a sequence of integers. "
            f"Received: {name}={variables!r}"
        ) from None
    if not selected:
        raise ValueError(f"`{name}` must select at least one variable. Received: []")
    bad = [v for v in selected if not 0 <= v < num_variables]
    if bad:
        raise ValueError(
            f"`{name}` must be indices in [0, {num_variables}). "
            f"Received: {name}={selected}"
        )
    return selected


def soft_codes(model_or_codes, images=None, batch_size=256):
    """Soft codes `(N, K, b)` of `images` under a model, or given directly.

    Args:
        model_or_codes: An `IMSVDModel` (anything with `discretize`) or soft
            codes `(N, K, b)`.
        images: Images for the model; must be `None` when codes are given.
            Defaults to `None`.
        batch_size: Inference batch size. Defaults to `256`.

    Returns:
        A floating NumPy array `(N, K, b)`.
    """
    if hasattr(model_or_codes, "discretize"):
        if images is None:
            raise ValueError(
                "`images` are needed to compute the codes of a model. "
                "Received: images=None"
            )
        codes = model_or_codes.discretize(images, batch_size=batch_size)
        return check_soft_codes(codes, "model.discretize(images)")
    return check_soft_codes(model_or_codes, "model_or_codes")


def as_images(images, name="images"):
    """Checks images `(N, H, W)` or `(N, H, W, C)` and returns a NumPy array."""
    images = to_numpy(images)
    if images.ndim not in (3, 4):
        raise ValueError(
            f"`{name}` must be an array of shape (N, H, W, C) or (N, H, W). "
            f"Received: {name}.shape={images.shape}"
        )
    return images


def check_joint_matrix(P, bin_size=None, name="P"):
    """Checks a joint matrix; returns `(P, bin_size, num_blocks)`.

    Without `bin_size`, reads it from the matrix: each b x b block of a joint
    matrix of normalised codes sums to 1, so a matrix of `V x V` blocks sums
    to `V^2` and `b = rows / V`.
    """
    P = to_numpy(P)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or not P.shape[0]:
        raise ValueError(
            f"`{name}` must be a square joint probability matrix. "
            f"Received: {name}.shape={P.shape}"
        )
    size = P.shape[0]
    if bin_size is None:
        total = float(np.sum(P, dtype="float64"))
        num_blocks = round(math.sqrt(max(total, 0.0)))
        if (
            num_blocks < 1
            or size % num_blocks
            or abs(total - num_blocks**2) > 1e-3 * num_blocks**2
        ):
            raise ValueError(
                f"`bin_size` cannot be read from `{name}`, whose blocks do not each "
                "sum to 1; pass `bin_size=`. Received: "
                f"{name}.shape={P.shape}, {name}.sum()={total}"
            )
        bin_size = size // num_blocks
    if isinstance(bin_size, bool) or not isinstance(bin_size, (int, np.integer)):
        raise TypeError(
            f"`bin_size` must be an integer. Received: bin_size={bin_size!r}"
        )
    if bin_size < 1 or size % bin_size:
        raise ValueError(
            f"`bin_size` must divide the size of `{name}`. "
            f"Received: bin_size={bin_size}, {name}.shape={P.shape}"
        )
    return P, int(bin_size), size // int(bin_size)
