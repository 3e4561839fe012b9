"""Stratified train/validation split of image arrays."""

import numbers

import numpy as np


def train_validation_split(
    images: np.ndarray,
    labels: np.ndarray,
    validation_split: float | int = 0.1,
    seed: int | None = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Splits arrays into training and validation parts with the class balance kept.

    Args:
        images: array of `N` images.
        labels: int array of shape `(N,)`.
        validation_split: a float in [0, 1) for a fraction of the images, or an
            int in [0, N) for a number of images. Defaults to `0.1`.
        seed: int or `None`, seed of the shuffle. Defaults to `0`.

    Returns:
        `((x_train, y_train), (x_validation, y_validation))`. Both parts are
        shuffled; with `validation_split=0` the validation part is empty.

    Example:

    >>> import keras_imsvd
    >>> x, y = keras_imsvd.data.load_digits()
    >>> (x_train, y_train), (x_val, y_val) = keras_imsvd.data.train_validation_split(
    ...     x, y, validation_split=397
    ... )
    >>> len(x_train), len(x_val)
    (1400, 397)
    """
    return _split_arrays(images, labels, validation_split, seed, "validation_split")


def _split_arrays(images, labels, validation_split, seed, name):
    """`train_validation_split`, naming the split argument `name` in errors."""
    labels = np.asarray(labels)
    count = len(labels)
    if len(images) != count:
        raise ValueError(
            "images and labels must have the same length. Received: "
            f"len(images)={len(images)}, len(labels)={count}"
        )
    if isinstance(validation_split, bool) or not isinstance(
        validation_split, numbers.Real
    ):
        raise TypeError(
            f"{name} must be a float fraction or an int count. "
            f"Received: {name}={validation_split!r}"
        )
    if isinstance(validation_split, numbers.Integral):
        size = int(validation_split)
        if not 0 <= size < count:
            raise ValueError(
                f"{name} must be in [0, {count}) as a count. "
                f"Received: {name}={validation_split}"
            )
    else:
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(
                f"{name} must be in [0, 1) as a fraction. "
                f"Received: {name}={validation_split}"
            )
        size = int(round(validation_split * count))
    rng = np.random.default_rng(seed)
    if size == 0:
        order = rng.permutation(count)
        return (images[order], labels[order]), (images[:0], labels[:0])
    from sklearn.model_selection import train_test_split

    train, validation = train_test_split(
        np.arange(count),
        test_size=size,
        random_state=int(rng.integers(2**31 - 1)),
        stratify=labels if _can_stratify(labels, size) else None,
    )
    return (images[train], labels[train]), (images[validation], labels[validation])


def _can_stratify(labels, size):
    _, counts = np.unique(labels, return_counts=True)
    classes = len(counts)
    return counts.min() >= 2 and classes <= size <= len(labels) - classes
