"""The two-view `tf.data` pipeline that `IMSVDModel.fit` reads."""

import keras

from keras_imsvd._validation import check_image_size
from keras_imsvd._validation import check_positive_int
from keras_imsvd.augment.views import apply_views
from keras_imsvd.augment.views import default_views
from keras_imsvd.data._images import resize
from keras_imsvd.data._images import to_unit_float
from keras_imsvd.data._lazy import tf
from keras_imsvd.data._sources import resolve_source


def multiview_dataset(
    source,
    views=None,
    batch_size: int = 256,
    *,
    labels: bool = False,
    shuffle: bool = True,
    shuffle_buffer: int = 10_000,
    seed: int | None = None,
    drop_remainder: bool = True,
    cache: bool | str = False,
    prefetch: bool = True,
    image_size=None,
    split: str = "train",
    data_dir=None,
):
    """Builds a `tf.data.Dataset` of batches of two augmented views of each image.

    Elements are `{"view_1": x1, "view_2": x2}`, or `({"view_1": x1, "view_2":
    x2}, y)` with `labels=True`: float32 images in [0, 1], `(batch_size, H, W,
    C)`. The pipeline runs on tf.data under every Keras backend; `fit` converts
    its batches.

    Order: source -> (resize) -> (cache) -> shuffle -> batch -> values scaled to
    [0, 1] and the two views applied per batch (`num_parallel_calls=AUTOTUNE`,
    random per image) -> prefetch.

    Sources:

    - images as an array `(N, H, W, C)` or `(N, H, W)`, uint8 (0-255) or float
      in [0, 1], or a pair `(images, labels)`. They are shuffled completely each
      epoch (`shuffle_buffer` is not used) and gathered per batch;
    - a `tf.data.Dataset` of unbatched (or batched) images, `(image, label)` or
      `{"image": ..., "label": ...}`;
    - an image folder with one sub-folder per class (a `Path`, or a string that
      exists or starts with `/`, `.` or `~`); needs `image_size`. Files are
      shuffled completely, then decoded in parallel;
    - any other string is a TFDS name, loaded with `tfds.load(source,
      split=split)` (needs `tensorflow-datasets`).

    Args:
        source: images, `(images, labels)`, a dataset, a folder or a TFDS name.
        views: a pair `(view_1, view_2)` of tf.data-safe layers or
            `keras.layers.Pipeline`s (see `keras_imsvd.augment`; not a
            `keras.Sequential`, which fails in tf.data under JAX and PyTorch), one
            layer used for both, or `None` for `keras_imsvd.augment.default_views`
            of the image shape (seeded with `seed`). Defaults to `None`.
        batch_size: int >= 1, images per batch. IMSVD estimates a joint
            distribution over the batch, so it needs more than one. Defaults to
            `256`.
        labels: bool, also yield the int32 labels (the source must have them).
            Defaults to `False`.
        shuffle: bool, shuffle every epoch. Defaults to `True`.
        shuffle_buffer: int, shuffle buffer size for dataset and TFDS sources
            (and for folders with `cache`). Defaults to `10_000`.
        seed: int or `None`, seed of the shuffle (and of the default views).
            Defaults to `None`.
        drop_remainder: bool, drop the last incomplete batch. Defaults to `True`.
        cache: bool or a file name; cache decoded (and resized) images of
            dataset, folder or TFDS sources in memory (`True`) or in that file.
            Arrays are in memory already. Defaults to `False`.
        prefetch: bool, end with `prefetch(AUTOTUNE)`. Defaults to `True`.
        image_size: int, `(height, width)` or `None`; resize source images to it
            (largest centred crop of that aspect ratio, antialiased) before the
            views. Defaults to `None`.
        split: str, the TFDS split for a TFDS name. Defaults to `"train"`.
        data_dir: str or `None`, TFDS data folder for a TFDS name. Defaults to
            `None`.

    Returns:
        A `tf.data.Dataset`.

    Example:

    >>> import keras_imsvd
    >>> (x, y), _ = keras_imsvd.data.load_digits_split()
    >>> views = keras_imsvd.augment.digits_views(seed=0)
    >>> ds = keras_imsvd.data.multiview_dataset(x, views, batch_size=128, seed=0)
    >>> batch = next(iter(ds))
    >>> tuple(batch["view_1"].shape)
    (128, 16, 16, 1)
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("shuffle_buffer", shuffle_buffer)
    size = check_image_size(image_size)
    # With a cache, decoded images are shuffled by the buffer, not the files.
    resolved = resolve_source(
        source, size, split, data_dir, shuffle_files=shuffle and not cache, seed=seed
    )
    if labels and not resolved.has_labels:
        raise ValueError(
            "labels=True needs a source with labels: (images, labels), a dataset of "
            "(image, label), an image folder or a TFDS name. Received: a "
            f"{resolved.kind} source without labels"
        )
    if resolved.kind == "arrays":
        dataset = _array_batches(resolved, batch_size, shuffle, seed, drop_remainder)
        if size is not None:
            dataset = dataset.map(lambda x, y: (resize(x, size), y))
    else:
        dataset = resolved.dataset
        if cache:
            dataset = dataset.cache(cache if isinstance(cache, str) else "")
        if shuffle and (resolved.kind != "folder" or cache):
            dataset = dataset.shuffle(
                shuffle_buffer, seed=seed, reshuffle_each_iteration=True
            )
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    image_shape = size + resolved.image_shape[2:] if size else resolved.image_shape
    if any(d is None for d in image_shape):
        raise ValueError(
            "Images of different sizes cannot be batched: pass image_size. "
            f"Received: image shape {image_shape}, image_size=None"
        )
    views = _resolve_views(views, image_shape, seed)

    def make_views(images, batch_labels):
        pair = apply_views(to_unit_float(images), views)
        return (pair, batch_labels) if labels else pair

    dataset = dataset.map(make_views, num_parallel_calls=tf.data.AUTOTUNE)
    if prefetch:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return dataset


def _array_batches(source, batch_size, shuffle, seed, drop_remainder):
    """Batches of `(images, labels)` gathered from arrays by shuffled indices."""
    count = len(source.images)
    if drop_remainder and count < batch_size:
        raise ValueError(
            "batch_size is larger than the number of images, so drop_remainder=True "
            f"leaves no batch. Received: batch_size={batch_size}, {count} images"
        )
    images = tf.convert_to_tensor(source.images)
    if source.labels is None:
        labels = tf.fill([count], tf.constant(-1, "int32"))
    else:
        labels = tf.convert_to_tensor(source.labels)
    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(batch_size, drop_remainder=drop_remainder)
    return indices.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))


def _resolve_views(views, image_shape, seed):
    if views is None:
        return default_views(image_shape, seed=seed)
    if isinstance(views, (tuple, list)):
        if len(views) != 2 or not all(callable(v) for v in views):
            raise ValueError(
                "views must be a pair (view_1, view_2) of layers. "
                f"Received: views={views!r}"
            )
        views = tuple(views)
    elif callable(views):
        views = (views, views)
    else:
        raise TypeError(
            "views must be a pair of layers, one layer or None. "
            f"Received: views={views!r}"
        )
    for view in views:
        if isinstance(view, keras.Model):
            # A Model converts tf.data's symbolic tensors to backend arrays, which
            # fails under JAX and PyTorch.
            raise TypeError(
                "Compose views with keras.layers.Pipeline, not keras.Sequential or "
                "another keras.Model: a Model cannot run inside tf.data under every "
                f"backend. Received: a view of type {type(view).__name__}"
            )
    return views
