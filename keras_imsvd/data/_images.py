"""Private helpers shared by the loaders: array checks, value range, resizing."""

import functools

import numpy as np

from keras_imsvd.data._lazy import tf


def as_image_arrays(images, labels=None):
    """Validates NumPy images (and labels); adds a channel axis to `(N, H, W)`.

    Images stay uint8 (0-255) or become float32 in [0, 1]; no copy is made for
    uint8 or float32 input.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            "images must have shape (N, H, W, C) or (N, H, W). "
            f"Received: images.shape={images.shape}"
        )
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise TypeError(
                "images must be uint8 (0-255) or float in [0, 1]. "
                f"Received: images.dtype={images.dtype}"
            )
        images = images.astype("float32", copy=False)
        if images.size and (images.min() < -1e-3 or images.max() > 1.0 + 1e-3):
            raise ValueError(
                "Float images must be in [0, 1] (divide uint8 images by 255). "
                f"Received: images in [{images.min():.4g}, {images.max():.4g}]"
            )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                "labels must have shape (N,) matching images. Received: "
                f"labels.shape={labels.shape}, images.shape={images.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(
                f"labels must be integers. Received: labels.dtype={labels.dtype}"
            )
        labels = labels.astype("int32", copy=False)
    return images, labels


def _integer_to_unit_float(images):
    return tf.cast(images, "float32") / 255.0


@functools.cache
def _integer_to_unit_float_compiled():
    """`_integer_to_unit_float` as one fused pass (not a cast, then a division).

    Built on first use, so that importing the package does not load TensorFlow.
    """
    return tf.function(_integer_to_unit_float, jit_compile=True, autograph=False)


def to_unit_float(images):
    """tf: integer images (0-255) -> float32 / 255; float images -> float32."""
    if images.dtype.is_integer:
        if images.shape.rank == 4 and images.shape.is_fully_defined():
            # One shape per dataset, so one trace.
            return _integer_to_unit_float_compiled()(images)
        return _integer_to_unit_float(images)
    return tf.cast(images, "float32")


def resize(images, size, crop_to_aspect_ratio=True, method="bilinear"):
    """tf: resizes `(H, W, C)` or `(N, H, W, C)` images to `size`, keeping dtype.

    With `crop_to_aspect_ratio`, the largest centred crop with the aspect ratio of
    `size` is resized (no distortion); otherwise the whole image is stretched.
    `method` (`"bilinear"` or `"bicubic"`) with antialiasing, so large images
    shrink without aliasing.
    """
    height, width = size
    images = tf.convert_to_tensor(images)
    dtype = images.dtype
    if crop_to_aspect_ratio:
        shape = tf.shape(images)
        in_h, in_w = shape[-3], shape[-2]
        target = width / height
        crop_h = tf.minimum(
            in_h, tf.cast(tf.round(tf.cast(in_w, "float32") / target), "int32")
        )
        crop_w = tf.minimum(
            in_w, tf.cast(tf.round(tf.cast(in_h, "float32") * target), "int32")
        )
        crop_h, crop_w = tf.maximum(crop_h, 1), tf.maximum(crop_w, 1)
        top, left = (in_h - crop_h) // 2, (in_w - crop_w) // 2
        images = images[..., top : top + crop_h, left : left + crop_w, :]
    resized = tf.image.resize(images, (height, width), method, antialias=True)
    if dtype.is_integer:
        resized = tf.clip_by_value(tf.round(resized), dtype.min, dtype.max)
    return tf.cast(resized, dtype)
