"""Brightness, contrast, saturation and hue jitter in random order (torchvision)."""

import numbers

import keras

from keras_imsvd.augment._image_layer import ImageLayer
from keras_imsvd.augment._image_layer import check_range

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.2989, 0.587, 0.114)


def _factor_range(name, value):
    """torchvision's rule: `x` means `[max(0, 1 - x), 1 + x]`; a pair is kept."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name} must be non-negative. Received: {name}={value}")
        return max(0.0, 1.0 - float(value)), 1.0 + float(value)
    return check_range(name, value, lower=0.0)


def _hue_range(value):
    """torchvision's rule: `x` in [0, 0.5] means `[-x, x]`; a pair is kept."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not 0.0 <= value <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5]. Received: hue={value}")
        return -float(value), float(value)
    return check_range("hue", value, lower=-0.5, upper=0.5)


@keras.saving.register_keras_serializable(package="keras_imsvd")
class ColorJitter(ImageLayer):
    """Randomly changes brightness, contrast, saturation and hue, in random order.

    A faithful port of torchvision's `ColorJitter`, the jitter of SimCLR, BYOL,
    Barlow Twins and IMSVD, applied to each image of a batch independently. With
    values scaled to [0, 1] and `gray(x) = 0.2989 R + 0.587 G + 0.114 B`:

    - brightness `b`: `x -> clip(b x)`;
    - contrast `c`: `x -> clip(c x + (1 - c) mean(gray(x)))`, the mean over the
      whole image;
    - saturation `s`: `x -> clip(s x + (1 - s) gray(x))`;
    - hue `h`: the hue channel of HSV is shifted by `h` (mod 1).

    `b, c, s` are uniform in `[max(0, 1 - v), 1 + v]` for a float argument `v`,
    `h` in `[-v, v]`; the four operations run in a random order per image.
    Saturation and hue leave one-channel images unchanged.

    Keras' `keras.layers.RandomColorJitter` differs: additive brightness,
    per-channel contrast, a different saturation scale and a fixed order.

    Args:
        brightness: float >= 0 or pair `(lo, hi)` of non-negative factors.
            Defaults to `0.4`.
        contrast: float >= 0 or pair `(lo, hi)` of non-negative factors.
            Defaults to `0.4`.
        saturation: float >= 0 or pair `(lo, hi)` of non-negative factors.
            Defaults to `0.4`.
        hue: float in [0, 0.5] or pair `(lo, hi)` in [-0.5, 0.5], shift as a
            fraction of the hue circle. Defaults to `0.1`.
        value_range: pair `(lo, hi)`, range of the input values, kept by the
            output. Defaults to `(0.0, 1.0)`.
        seed: int or `None`, seed of the layer's `keras.random.SeedGenerator`.
            Defaults to `None`.
        data_format: `"channels_last"` or `"channels_first"`, or `None` for
            `keras.config.image_data_format()`. Defaults to `None`.
        **kwargs: base layer arguments such as `name`.

    Call arguments:
        inputs: images of shape `(N, H, W, C)` or `(H, W, C)` with 1 or 3 channels.
        training: bool; when false the input is returned unchanged (cast to the
            compute dtype). Defaults to `True`.

    Returns:
        Images of the input shape.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> jitter = keras_imsvd.augment.ColorJitter(0.4, 0.4, 0.2, 0.1, seed=0)
    >>> images = np.random.uniform(size=(2, 32, 32, 3)).astype("float32")
    >>> tuple(jitter(images).shape)
    (2, 32, 32, 3)
    """

    def __init__(
        self,
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
        hue=0.1,
        value_range=(0.0, 1.0),
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(data_format=data_format, **kwargs)
        self._ranges = {
            "brightness": _factor_range("brightness", brightness),
            "contrast": _factor_range("contrast", contrast),
            "saturation": _factor_range("saturation", saturation),
            "hue": _hue_range(hue),
        }
        self.brightness = _plain(brightness)
        self.contrast = _plain(contrast)
        self.saturation = _plain(saturation)
        self.hue = _plain(hue)
        self.value_range = check_range("value_range", value_range)
        if self.value_range[0] == self.value_range[1]:
            raise ValueError(
                f"value_range must have lo < hi. Received: value_range={value_range!r}"
            )
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        images = data["images"] if isinstance(data, dict) else data
        if seed is None:
            seed = self._get_seed_generator(self.backend._backend)
        batch_size = self._batch_size(images)
        # One draw per image: four factors, then four keys ordering the operations.
        draws = self.backend.random.uniform((batch_size, 8), dtype="float32", seed=seed)
        transformation = {
            name: lo + (hi - lo) * draws[:, i]
            for i, (name, (lo, hi)) in enumerate(self._ranges.items())
        }
        transformation["order"] = self.backend.numpy.argsort(draws[:, 4:], axis=1)
        return transformation

    def transform_images(self, images, transformation=None, training=True):
        images = self.backend.cast(images, self.compute_dtype)
        if not training:
            return images
        if transformation is None:
            transformation = self.get_random_transformation(images)
        numpy = self.backend.numpy
        images = self._to_channels_last(images)
        lo, hi = self.value_range
        x = self.backend.cast((images - lo) / (hi - lo), "float32")
        channels = images.shape[-1]
        if channels not in (1, 3, None):
            raise ValueError(
                "ColorJitter expects images with 1 or 3 channels. "
                f"Received: images.shape={tuple(images.shape)}"
            )
        rgb = channels != 1
        order = transformation["order"]  # (N, 4) operation index per step
        # Hue is the one non-linear operation: run the blends placed before it,
        # then hue once for all images, then the blends placed after it.
        hue_step = numpy.argmax(order == 3, axis=1)  # (N,)
        # A blend before hue sits at step 0-2, one after it at step 1-3.
        before = (0, 1, 2)
        x = self._blend_steps(x, transformation, rgb, before, lambda s: s < hue_step)
        if rgb and self._ranges["hue"] != (0.0, 0.0):
            x = self._hue(x, transformation["hue"][:, None, None, None])
        after = (1, 2, 3)
        x = self._blend_steps(x, transformation, rgb, after, lambda s: s > hue_step)
        x = self.backend.cast(x * (hi - lo) + lo, self.compute_dtype)
        return self._from_channels_last(x)

    def transform_segmentation_masks(
        self, segmentation_masks, transformation=None, training=True
    ):
        return segmentation_masks

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "brightness": self.brightness,
                "contrast": self.contrast,
                "saturation": self.saturation,
                "hue": self.hue,
                "value_range": self.value_range,
                "seed": self.seed,
            }
        )
        return config

    def _blend_steps(self, x, transformation, rgb, steps, selected):
        """Brightness, contrast and saturation at the steps where `selected`."""
        numpy = self.backend.numpy
        order = transformation["order"]
        brightness = transformation["brightness"]
        contrast = transformation["contrast"]
        # Saturation does nothing to one-channel images.
        saturation = transformation["saturation"] if rgb else 1.0 + 0.0 * contrast
        for step in steps:
            operation = order[:, step]  # (N,)
            active = numpy.logical_and(operation != 3, selected(step))
            factor = numpy.where(
                operation == 0,
                brightness,
                numpy.where(operation == 1, contrast, saturation),
            )[:, None, None, None]
            # Each operation blends x with something: 0, mean gray level, gray.
            gray = self._gray(x)  # (N, H, W, 1)
            mean = numpy.mean(gray, axis=(1, 2, 3), keepdims=True)
            operation = operation[:, None, None, None]
            other = numpy.where(
                operation == 0, 0.0, numpy.where(operation == 1, mean, gray)
            )
            blended = numpy.clip(factor * x + (1.0 - factor) * other, 0.0, 1.0)
            x = numpy.where(active[:, None, None, None], blended, x)
        return x

    def _gray(self, x):
        if x.shape[-1] == 1:
            return x
        red, green, blue = x[..., 0:1], x[..., 1:2], x[..., 2:3]
        return _LUMA[0] * red + _LUMA[1] * green + _LUMA[2] * blue  # (N, H, W, 1)

    def _hue(self, x, factor):
        image = self.backend.image
        numpy = self.backend.numpy
        hsv = image.rgb_to_hsv(x, data_format="channels_last")
        hue = numpy.mod(hsv[..., 0:1] + factor, 1.0)
        hsv = numpy.concatenate([hue, hsv[..., 1:]], axis=-1)
        return image.hsv_to_rgb(hsv, data_format="channels_last")


def _plain(value):
    """A config-friendly copy of a float or a pair."""
    if isinstance(value, (tuple, list)):
        return tuple(float(v) for v in value)
    return float(value)
