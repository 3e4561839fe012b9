"""Gaussian blur with a random standard deviation per image."""

import numbers

import keras

from keras_imsvd._keras_compat import seed_generator
from keras_imsvd.augment._image_layer import ImageLayer
from keras_imsvd.augment._image_layer import check_range


def default_kernel_size(image_size):
    """Odd kernel size of about 10% of the image size, at least 3 (as BYOL).

    Args:
        image_size: int, height of the images.

    Returns:
        int, `int(0.1 * image_size)` rounded up to an odd number, at least 3.
    """
    size = max(int(0.1 * image_size), 3)
    return size if size % 2 == 1 else size + 1


@keras.saving.register_keras_serializable(package="keras_imsvd")
class GaussianBlur(ImageLayer):
    """Blurs each image with an isotropic Gaussian of random standard deviation.

    The blur of BYOL and Barlow Twins (torchvision's `GaussianBlur`): for each image
    independently, `sigma ~ U(sigma)` in pixels, and a separable kernel of
    `kernel_size` taps with weights `exp(-x^2 / (2 sigma^2))`, normalised to sum
    to 1, is applied along height and width with reflect padding.

    The layer always blurs; wrap it in `keras_imsvd.augment.RandomApply` to blur
    with a probability.

    Args:
        kernel_size: odd int, or `None` for about 10% of the image height
            (`int(0.1 * H)` made odd, at least 3: 23 for 224, 3 for 32), taken from
            the static input shape. Defaults to `None`.
        sigma: pair `(lo, hi)` with `0 < lo <= hi`, range of the standard deviation
            in pixels. Defaults to `(0.1, 2.0)`.
        seed: int or `None`, seed of the layer's `keras.random.SeedGenerator`.
            Defaults to `None`.
        data_format: `"channels_last"` or `"channels_first"`, or `None` for
            `keras.config.image_data_format()`. Defaults to `None`.
        **kwargs: base layer arguments such as `name`.

    Call arguments:
        inputs: images of shape `(N, H, W, C)` or `(H, W, C)`.
        training: bool; when false the input is returned unchanged (cast to the
            compute dtype). Defaults to `True`.

    Returns:
        Images of the input shape.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> blur = keras_imsvd.augment.GaussianBlur(kernel_size=23, seed=0)
    >>> images = np.random.uniform(size=(2, 64, 64, 3)).astype("float32")
    >>> tuple(blur(images).shape)
    (2, 64, 64, 3)

    References:
        Grill et al., Bootstrap Your Own Latent, https://arxiv.org/abs/2006.07733
    """

    # One depthwise convolution per direction: fast in TensorFlow, slow in XLA.
    xla_friendly = False

    def __init__(
        self, kernel_size=None, sigma=(0.1, 2.0), seed=None, data_format=None, **kwargs
    ):
        super().__init__(data_format=data_format, **kwargs)
        if kernel_size is not None:
            if isinstance(kernel_size, bool) or not isinstance(
                kernel_size, numbers.Integral
            ):
                raise TypeError(
                    "kernel_size must be an odd int or None. "
                    f"Received: kernel_size={kernel_size!r}"
                )
            if kernel_size <= 0 or kernel_size % 2 == 0:
                raise ValueError(
                    "kernel_size must be a positive odd int. "
                    f"Received: kernel_size={kernel_size}"
                )
            kernel_size = int(kernel_size)
        self.kernel_size = kernel_size
        self.sigma = check_range("sigma", sigma, positive=True)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        images = data["images"] if isinstance(data, dict) else data
        if seed is None:
            seed = seed_generator(self)
        sigma = self.backend.random.uniform(
            (self._batch_size(images),),
            self.sigma[0],
            self.sigma[1],
            dtype="float32",
            seed=seed,
        )
        return {"sigma": sigma}

    def transform_images(self, images, transformation=None, training=True):
        images = self.backend.cast(images, self.compute_dtype)
        if not training:
            return images
        if transformation is None:
            transformation = self.get_random_transformation(images)
        images = self._to_channels_last(images)
        kernel_size = self._kernel_size(images)
        radius = kernel_size // 2
        if radius == 0:
            return self._from_channels_last(images)
        numpy = self.backend.numpy
        offsets = self.backend.cast(numpy.arange(-radius, radius + 1), "float32")
        sigma = transformation["sigma"][:, None]  # (N, 1)
        weights = numpy.exp(-0.5 * numpy.square(offsets[None, :] / sigma))
        weights = weights / numpy.sum(weights, axis=1, keepdims=True)  # (N, k)
        blurred = self._separable_blur(images, weights, radius)
        return self._from_channels_last(blurred)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"kernel_size": self.kernel_size, "sigma": self.sigma, "seed": self.seed}
        )
        return config

    def _kernel_size(self, images):
        height, width = images.shape[1], images.shape[2]
        kernel_size = self.kernel_size
        if kernel_size is None:
            if height is None:
                raise ValueError(
                    "GaussianBlur(kernel_size=None) needs images with a static "
                    f"height. Received: images.shape={tuple(images.shape)}; "
                    "pass kernel_size explicitly."
                )
            kernel_size = default_kernel_size(height)
        radius = kernel_size // 2
        for size in (height, width):
            if size is not None and radius >= size:
                raise ValueError(
                    "kernel_size // 2 must be smaller than the image height and "
                    "width. "
                    f"Received: kernel_size={kernel_size}, "
                    f"images.shape={tuple(images.shape)}"
                )
        return kernel_size

    def _fold(self, images, radius):
        """(N, H, W, C) -> (1, H + 2r, W + 2r, N C), reflect-padded."""
        numpy = self.backend.numpy
        shape = self.backend.core.shape(images)
        folded = numpy.transpose(images, (1, 2, 0, 3))
        folded = numpy.reshape(folded, (1, shape[1], shape[2], -1))
        padding = ((0, 0), (radius, radius), (radius, radius), (0, 0))
        return numpy.pad(folded, padding, mode="reflect")

    def _separable_blur(self, images, weights, radius):
        """Blurs (N, H, W, C) images with per-image 1-D kernels (N, 2r + 1).

        The batch is folded into the channels, `(1, H, W, N C)`, so that one
        depthwise convolution per direction applies every image's own kernel.
        """
        numpy = self.backend.numpy
        shape = self.backend.core.shape(images)
        height, width, channels = shape[1], shape[2], images.shape[-1]
        kernel_size = 2 * radius + 1
        dtype = images.dtype
        if images.shape[0] is None:  # e.g. RandomApply's subsets: one size each call
            folded = self._fold(images, radius)
        else:  # compiled once for the batch size
            folded = self._compiled(self._fold, images, radius)
        # (N, k) -> (k, N C): channel n C + c uses image n's kernel.
        kernel = numpy.transpose(numpy.repeat(weights, channels, axis=0), (1, 0))
        kernel = self.backend.cast(kernel, dtype)
        nn = self.backend.nn
        blurred = nn.depthwise_conv(
            folded,
            numpy.reshape(kernel, (kernel_size, 1, -1, 1)),
            strides=1,
            padding="valid",
            data_format="channels_last",
        )
        blurred = nn.depthwise_conv(
            blurred,
            numpy.reshape(kernel, (1, kernel_size, -1, 1)),
            strides=1,
            padding="valid",
            data_format="channels_last",
        )
        blurred = numpy.reshape(blurred, (height, width, -1, channels))
        return numpy.transpose(blurred, (2, 0, 1, 3))
