"""Private: augmented training batches and centre-cropped test batches.

The pipelines read the images batch by batch, from NumPy arrays (nothing is
copied whole) or from image files (`keras_imsvd.data.StreamingViews` and
`streaming_images`, nothing is held beyond a few batches), and transform them
in `tf.data`, which runs beside the model on every backend.
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


def file_training_batches(files, labels, batch_size, crop, seed):
    """Batches of `crop` decoded from image files, a new order and new crop
    windows each epoch; only the crop window of a JPEG is decoded, at full
    resolution. The last partial batch is dropped, as `training_batches` does.

    Args:
        files: list of image file paths, or a `TFRecordImages`.
        labels: int `(N,)` class ids (records carry their own).
        batch_size: images per batch, `<= N`.
        crop: a `keras_imsvd.augment.RandomResizedCrop` (it also flips).
        seed: seed of the order of the files and of the crop windows.

    Returns:
        `(stream, batches)`: the `keras_imsvd.data.StreamingViews` (its
        `skipped` counts unreadable files as they are read) and a function from
        the epoch to a `tf.data.Dataset` of `(float32 images, int32 labels)`.
    """
    from keras_imsvd import data
    from keras_imsvd.data.records import labels_to_stream

    stream = data.StreamingViews(
        files,
        labels_to_stream(files, labels),
        views=(keras.layers.Pipeline([crop]),),
        image_size=crop.height,
        batch_size=batch_size,
        seed=int(seed),
        with_labels=True,
        num_shards=1,
        shard_index=0,
    )

    def batches(epoch):
        dataset = stream.dataset(initial_epoch=epoch, epochs=1)
        return dataset.map(lambda views, y: (views["view_1"], y))

    return stream, batches


def file_test_batches(files, labels, batch_size, image_size, resize_size):
    """Test batches of image files, as `test_batches` makes them from arrays:
    the centred square resized to `resize_size` (bicubic, antialiased), its
    centre `image_size` square, in order; the last batch padded to `batch_size`
    with copies of its last image labelled -1. Unreadable files are left out
    with their labels. `files` may be a `TFRecordImages`.

    Returns:
        A `tf.data.Dataset` of `(float32 images in [0, 1], int32 labels)`.
    """
    import tensorflow as tf

    from keras_imsvd import data
    from keras_imsvd.data.records import labels_to_stream

    dataset = data.streaming_images(
        files,
        labels_to_stream(files, labels),
        image_size=image_size,
        batch_size=batch_size,
        resize_size=resize_size,
        interpolation="bicubic",
    )

    def pad(x, y):
        missing = batch_size - tf.shape(x)[0]
        x = tf.concat([x, tf.repeat(x[-1:], missing, axis=0)], axis=0)
        y = tf.concat([y, tf.fill([missing], tf.constant(-1, y.dtype))], axis=0)
        x.set_shape((batch_size, image_size, image_size, 3))
        y.set_shape((batch_size,))
        return x, y

    return dataset.map(pad)
