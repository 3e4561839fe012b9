"""Un-augmented `(image, label)` data for kNN and linear-probe evaluation."""

import numpy as np

from keras_imsvd._validation import check_image_size
from keras_imsvd._validation import check_positive_int
from keras_imsvd.data._images import resize
from keras_imsvd.data._images import to_unit_float
from keras_imsvd.data._lazy import tf
from keras_imsvd.data._sources import resolve_source


def evaluation_dataset(
    source,
    batch_size: int = 256,
    image_size=None,
    split: str = "test",
    data_dir=None,
):
    """Batches of plain `(image, label)` pairs: no augmentation, no shuffle.

    Args:
        source: `(images, labels)` arrays, a `tf.data.Dataset` of
            `(image, label)`, an image folder or a TFDS name, as in
            `multiview_dataset`. Labels are required.
        batch_size: int, images per batch; the last batch may be smaller.
            Defaults to `256`.
        image_size: int, `(height, width)` or `None`; resize images to it
            (needed for folders). Defaults to `None`.
        split: str, the TFDS split for a TFDS name. Defaults to `"test"`.
        data_dir: str or `None`, TFDS data folder. Defaults to `None`.

    Returns:
        A `tf.data.Dataset` of `(float32 images in [0, 1], int32 labels)`.

    Example:

    >>> import keras_imsvd
    >>> _, (x_test, y_test) = keras_imsvd.data.load_digits_split()
    >>> ds = keras_imsvd.data.evaluation_dataset((x_test, y_test), batch_size=100)
    >>> [int(x.shape[0]) for x, y in ds]
    [100, 100, 100, 97]
    """
    batch_size = check_positive_int("batch_size", batch_size)
    size = check_image_size(image_size)
    resolved = _labelled_source(source, size, split, data_dir)
    if resolved.kind == "arrays":
        dataset = tf.data.Dataset.from_tensor_slices(
            (resolved.images, resolved.labels)
        ).batch(batch_size)
        if size is not None:
            dataset = dataset.map(lambda x, y: (resize(x, size), y))
    else:
        dataset = resolved.dataset.batch(batch_size)
    dataset = dataset.map(
        lambda x, y: (to_unit_float(x), y), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_arrays(
    source, image_size=None, split: str = "test", data_dir=None
) -> tuple[np.ndarray, np.ndarray]:
    """All `(image, label)` pairs of a source as NumPy arrays, un-augmented.

    Args:
        source: `(images, labels)` arrays, a `tf.data.Dataset` of
            `(image, label)`, an image folder or a TFDS name, as in
            `multiview_dataset`. Labels are required.
        image_size: int, `(height, width)` or `None`; resize images to it
            (needed for folders). Defaults to `None`.
        split: str, the TFDS split for a TFDS name. Defaults to `"test"`.
        data_dir: str or `None`, TFDS data folder. Defaults to `None`.

    Returns:
        `(images, labels)`: float32 images in [0, 1], `(N, H, W, C)`, and int32
        labels `(N,)`.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> images = np.zeros((5, 32, 32, 3), "uint8")
    >>> x, y = keras_imsvd.data.evaluation_arrays((images, np.arange(5)))
    >>> x.dtype.name, float(x.max()), y.tolist()
    ('float32', 0.0, [0, 1, 2, 3, 4])
    """
    size = check_image_size(image_size)
    resolved = _labelled_source(source, size, split, data_dir)
    if resolved.kind == "arrays" and size is None:
        images = resolved.images
        if images.dtype == np.uint8:
            images = images.astype("float32") / np.float32(255.0)
        return images, resolved.labels
    batches = list(evaluation_dataset(source, 1024, image_size, split, data_dir))
    if not batches:
        raise ValueError("The source holds no images.")
    images = np.concatenate([np.asarray(x) for x, _ in batches])
    labels = np.concatenate([np.asarray(y) for _, y in batches])
    return images, labels


def _labelled_source(source, size, split, data_dir):
    resolved = resolve_source(source, size, split, data_dir)
    if not resolved.has_labels:
        raise ValueError(
            "Evaluation needs labels: pass (images, labels), a dataset of "
            "(image, label), an image folder or a TFDS name. Received: a "
            f"{resolved.kind} source without labels"
        )
    return resolved
