"""Brightness, contrast, saturation and hue jitter in random order (torchvision)."""

import numbers

import keras

from keras_imsvd._keras_compat import seed_generator
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

    # `RandomApply` may pass its selection as `transformation["apply"]`.
    accepts_apply_mask = True

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        images = data["images"] if isinstance(data, dict) else data
        if seed is None:
            seed = seed_generator(self)
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
        images = self._to_channels_last(images)
        channels = images.shape[-1]
        if channels not in (1, 3, None):
            raise ValueError(
                "ColorJitter expects images with 1 or 3 channels. "
                f"Received: images.shape={tuple(images.shape)}"
            )
        numpy = self.backend.numpy
        factors = numpy.stack(
            [transformation[name] for name in self._ranges], axis=1
        )  # (N, 4): brightness, contrast, saturation, hue
        order = self.backend.cast(transformation["order"], "int32")
        apply = transformation.get("apply")  # from `RandomApply`, or None
        if self.backend.name == "tensorflow":
            if apply is not None:  # left-out images: every step does nothing (4)
                order = numpy.where(numpy.reshape(apply, (-1, 1)), order, 4)
            x = self._compiled(self._jitter_per_image, images, factors, order)
        else:
            x = self._jitter(images, factors, order)
            if apply is not None:
                x = numpy.where(numpy.reshape(apply, (-1, 1, 1, 1)), x, images)
        return self._from_channels_last(x)

    def _jitter_per_image(self, images, factors, order):
        """`_jitter` one image at a time, for XLA (TensorFlow ops).

        Each image then goes through exactly its own four operations while it
        sits in the CPU cache, instead of the whole batch going through six
        masked blend passes: about 1.7x less CPU time for 224 px batches.
        """
        numpy = self.backend.numpy
        core = self.backend.core
        lo, hi = self.value_range
        x = self.backend.cast((images - lo) / (hi - lo), "float32")
        rgb = images.shape[-1] != 1
        hue = rgb and self._ranges["hue"] != (0.0, 0.0)

        def jitter_one(inputs):
            image, factor, steps = inputs  # (H, W, C), (4,), (4,)

            def brightness(v):
                return numpy.clip(factor[0] * v, 0.0, 1.0)

            def contrast(v):
                mean = numpy.mean(self._gray(v))
                return numpy.clip(factor[1] * v + (1.0 - factor[1]) * mean, 0.0, 1.0)

            def saturation(v):
                if not rgb:
                    return v
                gray = self._gray(v)
                return numpy.clip(factor[2] * v + (1.0 - factor[2]) * gray, 0.0, 1.0)

            def hue_shift(v):
                return self._hue(v, factor[3]) if hue else v

            def unchanged(v):
                return v

            operations = [brightness, contrast, saturation, hue_shift, unchanged]
            for step in range(4):
                image = core.switch(steps[step], operations, image)
            return image

        x = core.map(jitter_one, (x, factors, order))
        return self.backend.cast(x * (hi - lo) + lo, self.compute_dtype)

    def _jitter(self, images, factors, order):
        """The four operations in `order` (N, 4), channels-last images."""
        numpy = self.backend.numpy
        lo, hi = self.value_range
        x = self.backend.cast((images - lo) / (hi - lo), "float32")
        rgb = images.shape[-1] != 1
        # Hue is the one non-linear operation: run the blends placed before it,
        # then hue once for all images, then the blends placed after it.
        hue_step = numpy.argmax(order == 3, axis=1)  # (N,)
        # A blend before hue sits at step 0-2, one after it at step 1-3.
        for step in (0, 1, 2):
            x = self._blend(x, factors, order[:, step], step < hue_step, rgb)
        if rgb and self._ranges["hue"] != (0.0, 0.0):
            x = self._hue(x, factors[:, 3, None, None, None])
        for step in (1, 2, 3):
            x = self._blend(x, factors, order[:, step], step > hue_step, rgb)
        return self.backend.cast(x * (hi - lo) + lo, self.compute_dtype)

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

    def _blend(self, x, factors, operation, selected, rgb):
        """One blend step: brightness, contrast or saturation per image.

        Each operation blends `x` with something: brightness with 0, contrast
        with the mean gray level, saturation with the gray image. With `f` the
        image's factor (1 where the step does nothing) that is
        `clip(f x + (1 - f) (is_contrast mean + is_saturation gray))`.
        """
        numpy = self.backend.numpy
        active = numpy.logical_and(operation != 3, selected)
        if not rgb:  # saturation does nothing to one-channel images
            active = numpy.logical_and(active, operation != 2)
        weight = numpy.take_along_axis(
            factors, numpy.minimum(operation, 2)[:, None], axis=1
        )[:, 0]
        weight = numpy.where(active, 1.0 - weight, 0.0)  # (N,): 1 - f, or 0
        is_contrast = self.backend.cast(operation == 1, "float32")
        is_saturation = self.backend.cast(operation == 2, "float32")
        gray = self._gray(x)  # (N, H, W, 1)
        mean = numpy.mean(gray, axis=(1, 2, 3))  # (N,)
        shift = (weight * is_contrast * mean)[:, None, None, None]
        mix = (weight * is_saturation)[:, None, None, None]
        keep = (1.0 - weight)[:, None, None, None]
        return numpy.clip(keep * x + (shift + mix * gray), 0.0, 1.0)

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
