"""Private: argument checks shared by several packages of keras_imsvd."""

import math
import numbers

# The keys of the two views in a batch: `{"view_1": x1, "view_2": x2}`.
VIEW_KEYS = ("view_1", "view_2")


def check_positive_int(name, value) -> int:
    """Returns `value` as an int after checking it is an integer >= 1.

    Python and NumPy integers pass; bools and floats raise `TypeError`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be a positive integer. Received: {name}={value!r}"
        )
    if value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
    return int(value)


def check_image_size(image_size, allow_none=True) -> tuple[int, int] | None:
    """Returns `(height, width)` from an int or a pair of ints (or `None`)."""
    if image_size is None and allow_none:
        return None
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    elif (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool)
            for s in image_size
        )
    ):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise TypeError(
            "image_size must be an int or a pair of ints (height, width). "
            f"Received: image_size={image_size!r}"
        )
    if min(size) <= 0:
        raise ValueError(
            f"image_size must be positive. Received: image_size={image_size!r}"
        )
    return size


def views_of_dict(views) -> list:
    """`[views["view_1"], views["view_2"]]`, or a `ValueError` naming the keys."""
    missing = [key for key in VIEW_KEYS if key not in views]
    if missing:
        raise ValueError(
            "Two views are needed, under the keys 'view_1' and 'view_2'. "
            f"Received: keys={sorted(views)}"
        )
    return [views[key] for key in VIEW_KEYS]


def check_weight(name, value):
    """Raises unless `value` is a finite number `>= 0` (a weight of a term)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a finite number >= 0. Received: {name}={value}"
        )
