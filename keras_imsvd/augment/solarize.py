"""Solarization: inverts the values at or above a threshold."""

import numbers

import keras

from keras_imsvd.augment._image_layer import ImageLayer
from keras_imsvd.augment._image_layer import check_range


@keras.saving.register_keras_serializable(package="keras_imsvd")
class Solarize(ImageLayer):
    """Inverts every value at or above `threshold`: `x -> hi + lo - x`.

    The solarization of BYOL and Barlow Twins (torchvision's `RandomSolarize`
    without its probability; wrap the layer in `keras_imsvd.augment.RandomApply`
    for one). In [0, 1] with the default threshold: `x` if `x < 0.5`, else `1 - x`.

    `keras.layers.Solarization` is not used because its random threshold is
    drawn from `[threshold_factor[0], 255 * threshold_factor[1]]`: no setting
    gives a fixed threshold of one half.

    Args:
        threshold: float, values `>= threshold` are inverted. Defaults to `0.5`.
        value_range: pair `(lo, hi)`, range of the input values. Defaults to
            `(0.0, 1.0)`.
        **kwargs: base layer arguments such as `name`.

    Call arguments:
        inputs: images of shape `(N, H, W, C)` or `(H, W, C)`.
        training: bool; as an augmentation the layer acts only when true and
            returns the input (cast to the compute dtype) otherwise. Defaults to
            `True`.

    Returns:
        Images of the input shape.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> solarize = keras_imsvd.augment.Solarize()
    >>> np.asarray(solarize(np.array([[[0.2], [0.7]]], "float32"))).ravel()
    array([0.2, 0.3], dtype=float32)
    """

    def __init__(self, threshold=0.5, value_range=(0.0, 1.0), **kwargs):
        super().__init__(**kwargs)
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise TypeError(
                f"threshold must be a float. Received: threshold={threshold!r}"
            )
        self.threshold = float(threshold)
        self.value_range = check_range("value_range", value_range)

    def transform_images(self, images, transformation=None, training=True):
        images = self.backend.cast(images, self.compute_dtype)
        if not training:
            return images
        return self._compiled(self._solarize, images)

    def _solarize(self, images):
        inverted = (self.value_range[0] + self.value_range[1]) - images
        return self.backend.numpy.where(images >= self.threshold, inverted, images)

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold, "value_range": self.value_range})
        return config
