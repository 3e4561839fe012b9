"""The IMSVD projector: an MLP of Dense + BatchNorm + ReLU blocks."""

import keras


def parse_projector_spec(projector):
    """Reads a projector spec into a list of layer widths.

    Args:
        projector: A string of widths joined by `-` (the published `--mlp`
            format, e.g. `"8192-8160"`) or a list/tuple of positive integers.

    Returns:
        A list of positive integers.

    Raises:
        ValueError: if the spec cannot be parsed or holds a width below 1.
        TypeError: if `projector` is neither a string nor a sequence.
    """
    if isinstance(projector, str):
        parts = projector.strip().split("-")
        try:
            widths = [int(part) for part in parts]
        except ValueError:
            raise ValueError(
                "`projector` must be widths joined by '-', such as '1024-1024-1024'. "
                f"Received: projector={projector!r}"
            ) from None
    elif isinstance(projector, (list, tuple)):
        if not all(isinstance(w, int) and not isinstance(w, bool) for w in projector):
            raise TypeError(
                "`projector` as a list must hold integers. "
                f"Received: projector={projector!r}"
            )
        widths = list(projector)
    else:
        raise TypeError(
            "`projector` must be a spec string such as '1024-1024-1024', a list of "
            f"widths, or a keras.Model. Received: projector={projector!r}"
        )
    if not widths or any(w < 1 for w in widths):
        raise ValueError(
            "`projector` must list at least one width, each >= 1. "
            f"Received: projector={projector!r}"
        )
    return widths


def build_projector(projector, name="projector"):
    """Builds the projector MLP of IMSVD from a spec.

    Every width but the last gives a `Dense -> BatchNormalization -> ReLU` block;
    the last width gives a `Dense` without bias, as in the published code (and in
    Barlow Twins, on which it builds).

    Args:
        projector: Widths as a string (`"8192-8160"`) or a list of integers.
        name: Name of the returned model. Defaults to `"projector"`.

    Returns:
        A `keras.Sequential` mapping `(N, F)` features to `(N, widths[-1])`.

    Example:

    >>> import keras_imsvd
    >>> mlp = keras_imsvd.models.build_projector("64-32")
    >>> [layer.__class__.__name__ for layer in mlp.layers]
    ['Dense', 'BatchNormalization', 'ReLU', 'Dense']
    """
    widths = parse_projector_spec(projector)
    blocks = []
    for i, width in enumerate(widths[:-1]):
        blocks += [
            keras.layers.Dense(width, name=f"dense_{i}"),
            keras.layers.BatchNormalization(name=f"batch_norm_{i}"),
            keras.layers.ReLU(name=f"relu_{i}"),
        ]
    blocks.append(
        keras.layers.Dense(widths[-1], use_bias=False, name=f"dense_{len(widths) - 1}")
    )
    return keras.Sequential(blocks, name=name)
