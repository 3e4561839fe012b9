"""Private: augmented training batches and centre-cropped test batches.

Both pipelines read the images batch by batch from NumPy arrays (nothing is
copied whole) and transform them in `tf.data`, which runs beside the model on
every backend.
"""

import keras
import numpy as np


def _unit_float(images):
    import tensorflow as tf

    if images.dtype == tf.uint8:
        return tf.cast(images, "float32") / 255.0
    return tf.cast(images, "float32")


def training_batches(images, labels, batch_size, crop, seed):
    """Batches of `crop(images)` in a new order on each pass; the last partial
    batch is dropped, as the published CIFAR-10 loader does (`drop_last`).

    Args:
        images: uint8 or float `(N, H, W, C)` images.
        labels: int64 `(N,)` class ids.
        batch_size: images per batch, `<= N`.
        crop: a `keras_imsvd.augment.RandomResizedCrop` (it also flips).
        seed: seed of the order of the images.

    Returns:
        A `tf.data.Dataset` of `(float32 images, int64 labels)`; each iteration
        is one epoch.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    steps = len(images) // batch_size

    def generate():
        order = rng.permutation(len(images))
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            yield images[index], labels[index]

    signature = (
        tf.TensorSpec((batch_size, *images.shape[1:]), images.dtype),
        tf.TensorSpec((batch_size,), tf.int64),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.map(
        lambda x, y: (crop(_unit_float(x), training=True), y),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(2)


def test_batches(images, labels, batch_size, image_size, resize_size):
    """Batches resized to `resize_size` (bicubic) and centre-cropped to
    `image_size`, in order. The last batch is padded to `batch_size` with copies
    of the last image labelled -1, so that the encoder sees one shape only.

    Returns:
        A `tf.data.Dataset` of `(float32 images in [0, 1], int64 labels)`.
    """
    import tensorflow as tf

    resize = keras.layers.Resizing(
        resize_size, resize_size, interpolation="bicubic", crop_to_aspect_ratio=True
    )
    centre = keras.layers.CenterCrop(image_size, image_size)

    def generate():
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size]
            y = labels[start : start + batch_size]
            missing = batch_size - len(x)
            if missing:
                x = np.concatenate([x, np.repeat(x[-1:], missing, axis=0)])
                y = np.concatenate([y, np.full(missing, -1, y.dtype)])
            yield x, y

    def transform(x, y):
        # Bicubic interpolation overshoots: clip as decoding to 8 bits would.
        return tf.clip_by_value(centre(resize(_unit_float(x))), 0.0, 1.0), y

    signature = (
        tf.TensorSpec((batch_size, *images.shape[1:]), images.dtype),
        tf.TensorSpec((batch_size,), tf.int64),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
