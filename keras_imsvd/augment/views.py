"""The published view pipelines, as pairs of `keras.layers.Pipeline`.

Convention: images are float32 in [0, 1], channels last, shape `(N, H, W, C)`; the
views return the same range and dtype. Normalisation (mean/std) is not part of the
views: the encoder may start with its own `Rescaling`/`Normalization`.

A view pipeline is a `keras.layers.Pipeline`, not a `keras.Sequential`: inside
`tf.data.Dataset.map` under JAX or PyTorch, a Sequential tries to convert its
symbolic TensorFlow inputs to backend arrays and fails; a Pipeline of tf.data-safe
layers runs on every backend.
"""

import keras

from keras_imsvd._validation import VIEW_KEYS
from keras_imsvd._validation import check_positive_int
from keras_imsvd.augment.color_jitter import ColorJitter
from keras_imsvd.augment.flip_grayscale import RandomGrayscale
from keras_imsvd.augment.gaussian_blur import GaussianBlur
from keras_imsvd.augment.gaussian_blur import default_kernel_size
from keras_imsvd.augment.random_apply import RandomApply
from keras_imsvd.augment.random_resized_crop import RandomResizedCrop
from keras_imsvd.augment.solarize import Solarize

# Offset between the seeds of the two views of a preset.
_VIEW_SEED_OFFSET = 1000


def _seeds(seed, view):
    """Distinct integer seeds for the layers of one view, or `None`s."""
    if seed is None:
        return iter(lambda: None, 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None. Received: seed={seed!r}")
    base = seed + view * _VIEW_SEED_OFFSET
    return iter(range(base, base + _VIEW_SEED_OFFSET))


def _common_layers(image_size, scale, jitter, seeds):
    """Crop, flip, colour jitter (p=0.8) and grayscale (p=0.2), as SimCLR."""
    brightness, contrast, saturation, hue = jitter
    return [
        # The crop also flips half of the images (a RandomFlip, fused).
        RandomResizedCrop(
            image_size, image_size, scale=scale, horizontal_flip=True, seed=next(seeds)
        ),
        RandomApply(
            ColorJitter(brightness, contrast, saturation, hue, seed=next(seeds)),
            rate=0.8,
            seed=next(seeds),
        ),
        RandomGrayscale(factor=0.2, seed=next(seeds)),
    ]


def cifar_views(
    image_size: int = 32, seed: int | None = None
) -> tuple[keras.layers.Pipeline, keras.layers.Pipeline]:
    """The two CIFAR-10 views of IMSVD (the same distribution for both).

    `RandomResizedCrop(image_size, scale=(0.2, 1))`, horizontal flip,
    `ColorJitter(0.4, 0.4, 0.4, 0.1)` with probability 0.8, grayscale with
    probability 0.2.

    Args:
        image_size: int, output height and width. Defaults to `32`.
        seed: int or `None`; each layer of each view gets its own seed derived from
            it. Defaults to `None`.

    Returns:
        `(view_1, view_2)`, two `keras.layers.Pipeline`s mapping float32 images in
        [0, 1] of shape `(N, H, W, 3)` to `(N, image_size, image_size, 3)`.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> view_1, view_2 = keras_imsvd.augment.cifar_views(seed=0)
    >>> images = np.random.uniform(size=(4, 32, 32, 3)).astype("float32")
    >>> tuple(view_1(images).shape)
    (4, 32, 32, 3)
    """
    check_positive_int("image_size", image_size)
    views = []
    for view in (1, 2):
        seeds = _seeds(seed, view)
        layers = _common_layers(image_size, (0.2, 1.0), (0.4, 0.4, 0.4, 0.1), seeds)
        views.append(keras.layers.Pipeline(layers, name=f"cifar_view_{view}"))
    return tuple(views)


def imagenet_views(
    image_size: int = 224, seed: int | None = None
) -> tuple[keras.layers.Pipeline, keras.layers.Pipeline]:
    """The two asymmetric ImageNet views of IMSVD (those of BYOL and Barlow Twins).

    Both: `RandomResizedCrop(image_size, scale=(0.08, 1))`, horizontal flip,
    `ColorJitter(0.4, 0.4, 0.2, 0.1)` with probability 0.8, grayscale with
    probability 0.2, then Gaussian blur (sigma in [0.1, 2], kernel about 10% of
    `image_size`) with probability 1.0 for view 1 and 0.1 for view 2, and
    solarization (`x -> 1 - x` where `x >= 0.5`) with probability 0 for view 1
    and 0.2 for view 2.

    Args:
        image_size: int, output height and width. Defaults to `224`.
        seed: int or `None`; each layer of each view gets its own seed derived from
            it. Defaults to `None`.

    Returns:
        `(view_1, view_2)`, two `keras.layers.Pipeline`s mapping float32 images in
        [0, 1] of shape `(N, H, W, 3)` to `(N, image_size, image_size, 3)`.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> view_1, view_2 = keras_imsvd.augment.imagenet_views(image_size=64, seed=0)
    >>> images = np.random.uniform(size=(2, 80, 80, 3)).astype("float32")
    >>> tuple(view_2(images).shape)
    (2, 64, 64, 3)
    """
    check_positive_int("image_size", image_size)
    kernel_size = default_kernel_size(image_size)
    views = []
    for view, blur_rate, solarize_rate in ((1, 1.0, 0.0), (2, 0.1, 0.2)):
        seeds = _seeds(seed, view)
        layers = _common_layers(image_size, (0.08, 1.0), (0.4, 0.4, 0.2, 0.1), seeds)
        blur = GaussianBlur(kernel_size=kernel_size, seed=next(seeds))
        if blur_rate < 1.0:
            blur = RandomApply(blur, rate=blur_rate, seed=next(seeds))
        layers.append(blur)
        if solarize_rate > 0.0:
            solarize = Solarize(threshold=0.5)
            layers.append(RandomApply(solarize, rate=solarize_rate, seed=next(seeds)))
        views.append(keras.layers.Pipeline(layers, name=f"imagenet_view_{view}"))
    return tuple(views)


def digits_views(
    image_size: int = 16, seed: int | None = None
) -> tuple[keras.layers.Pipeline, keras.layers.Pipeline]:
    """Two views for the bundled 8x8 scikit-learn digits (not flip invariant).

    Upsampling to `image_size` (bilinear), translation by up to 12.5% of the size,
    rotation by up to 10 degrees, zoom by up to 15% in or out (empty areas are
    filled with 0, the background), contrast factor in [0.7, 1.3]. The same
    distribution for both views.

    Args:
        image_size: int, output height and width. Defaults to `16`.
        seed: int or `None`; each layer of each view gets its own seed derived from
            it. Defaults to `None`.

    Returns:
        `(view_1, view_2)`, two `keras.layers.Pipeline`s mapping float32 images in
        [0, 1] of shape `(N, H, W, C)` to `(N, image_size, image_size, C)`.

    Example:

    >>> import keras_imsvd
    >>> x, y = keras_imsvd.data.load_digits()
    >>> view_1, view_2 = keras_imsvd.augment.digits_views(seed=0)
    >>> tuple(view_1(x[:4]).shape)
    (4, 16, 16, 1)
    """
    check_positive_int("image_size", image_size)
    views = []
    for view in (1, 2):
        seeds = _seeds(seed, view)
        fill = {"fill_mode": "constant", "fill_value": 0.0}
        layers = [
            keras.layers.Resizing(image_size, image_size, interpolation="bilinear"),
            keras.layers.RandomTranslation(0.125, 0.125, seed=next(seeds), **fill),
            keras.layers.RandomRotation(10.0 / 360.0, seed=next(seeds), **fill),
            keras.layers.RandomZoom((-0.15, 0.15), seed=next(seeds), **fill),
            keras.layers.RandomContrast(0.3, value_range=(0.0, 1.0), seed=next(seeds)),
        ]
        views.append(keras.layers.Pipeline(layers, name=f"digits_view_{view}"))
    return tuple(views)


def default_views(
    image_shape, seed: int | None = None
) -> tuple[keras.layers.Pipeline, keras.layers.Pipeline]:
    """The preset that fits images of a given shape.

    One channel: `digits_views` at `max(16, H)`; three channels and `H <= 64`:
    `cifar_views` at `H`; larger: `imagenet_views` at `H`.

    Args:
        image_shape: `(H, W, C)` of the images (channels last).
        seed: int or `None`, passed to the preset. Defaults to `None`.

    Returns:
        `(view_1, view_2)` pipelines.

    Example:

    >>> import keras_imsvd
    >>> view_1, view_2 = keras_imsvd.augment.default_views((32, 32, 3))
    >>> view_1.name
    'cifar_view_1'
    """
    if len(image_shape) != 3 or any(d is None for d in image_shape):
        raise ValueError(
            "image_shape must be a fully known (H, W, C). "
            f"Received: image_shape={tuple(image_shape)}"
        )
    height, _, channels = (int(d) for d in image_shape)
    if channels == 1:
        return digits_views(max(16, height), seed=seed)
    if channels != 3:
        raise ValueError(
            "There is no preset for images with C not in (1, 3). "
            f"Received: image_shape={tuple(image_shape)}; pass views explicitly."
        )
    if height <= 64:
        return cifar_views(height, seed=seed)
    return imagenet_views(height, seed=seed)


def apply_views(images, views, training=True):
    """Applies two view pipelines to a batch of images.

    Args:
        images: images, `(N, H, W, C)`.
        views: pair `(view_1, view_2)` of Keras layers (pipelines) or plain
            callables on image batches.
        training: bool, passed to the views. Defaults to `True`.

    Returns:
        `{"view_1": view_1(images), "view_2": view_2(images)}`, the structure
        `IMSVDModel.fit` reads.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> views = keras_imsvd.augment.cifar_views(seed=0)
    >>> images = np.random.uniform(size=(4, 32, 32, 3)).astype("float32")
    >>> sorted(keras_imsvd.augment.apply_views(images, views))
    ['view_1', 'view_2']
    """
    return {key: _call(view, images, training) for key, view in zip(VIEW_KEYS, views)}


def _call(view, images, training):
    if isinstance(view, keras.layers.Layer):
        return view(images, training=training)
    return view(images)
