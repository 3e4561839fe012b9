"""The bundled scikit-learn digits: 1,797 real 8x8 grayscale images, 10 classes."""

import numpy as np

from keras_imsvd._validation import check_image_size
from keras_imsvd.data._images import resize
from keras_imsvd.data.split import _split_arrays


def load_digits(image_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Loads scikit-learn's handwritten digits (shipped with it, no download).

    Args:
        image_size: int, output height and width; 8 keeps the original pixels,
            other sizes are resized bilinearly. Defaults to `8`.

    Returns:
        `(images, labels)`: float32 images in [0, 1] of shape
        `(1797, image_size, image_size, 1)` (the 0-16 grey levels divided by 16)
        and int32 labels 0-9 of shape `(1797,)`.

    Example:

    >>> import keras_imsvd
    >>> x, y = keras_imsvd.data.load_digits()
    >>> x.shape, x.dtype.name, int(y.max())
    ((1797, 8, 8, 1), 'float32', 9)
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    size = check_image_size(image_size, allow_none=False)
    digits = sklearn_load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]
    labels = digits.target.astype("int32")
    if size != images.shape[1:3]:
        images = np.clip(resize(images, size, crop_to_aspect_ratio=False).numpy(), 0, 1)
    return images, labels


def load_digits_split(
    test_size: int = 397, seed: int | None = 0, image_size: int = 8
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The digits split into training and held-out parts, stratified by class.

    Args:
        test_size: int number (or float fraction) of held-out images; 397 leaves
            1,400 for training. Defaults to `397`.
        seed: int or `None`, seed of the split. Defaults to `0`.
        image_size: int, see `load_digits`. Defaults to `8`.

    Returns:
        `((x_train, y_train), (x_test, y_test))` as in `load_digits`.

    Example:

    >>> import keras_imsvd
    >>> (x_train, y_train), (x_test, y_test) = keras_imsvd.data.load_digits_split()
    >>> len(x_train), len(x_test)
    (1400, 397)
    """
    images, labels = load_digits(image_size)
    return _split_arrays(images, labels, test_size, seed, "test_size")
