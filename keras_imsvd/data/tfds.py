"""TensorFlow Datasets images as `(image, label)` pairs."""

from keras_imsvd._validation import check_image_size
from keras_imsvd.data._images import resize
from keras_imsvd.data._lazy import tf


def tfds_dataset(
    name: str,
    split: str = "train",
    data_dir=None,
    image_size=None,
    shuffle_files: bool = False,
    download: bool = True,
):
    """Loads a TFDS image data set with `tfds.load`, as `(image, label)` pairs.

    Needs `tensorflow-datasets` (`pip install tensorflow-datasets`). Works for
    the data sets whose examples have an `"image"` feature (`cifar10`,
    `imagenette`, `imagenet2012`, ...); the label is the `"label"` feature, or -1
    where there is none.

    Args:
        name: str, a TFDS name such as `"cifar10"` or `"imagenette/320px-v2"`.
        split: str, a TFDS split such as `"train"` or `"train[:90%]"`. Defaults
            to `"train"`.
        data_dir: str or `None`, where TFDS keeps its data. Defaults to `None`.
        image_size: int, `(height, width)` or `None`; resize every image to it
            (needed when image sizes differ). Defaults to `None`.
        shuffle_files: bool, passed to `tfds.load`. Defaults to `False`.
        download: bool, passed to `tfds.load`. Defaults to `True`.

    Returns:
        A `tf.data.Dataset` of `(uint8 image (H, W, C), int32 label)`.

    Example:

    >>> import keras_imsvd
    >>> ds = keras_imsvd.data.tfds_dataset("cifar10", split="test")  # doctest: +SKIP
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a TFDS name (str). Received: name={name!r}")
    size = check_image_size(image_size)
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            f"Loading the TFDS data set {name!r} needs tensorflow-datasets: "
            "pip install tensorflow-datasets"
        ) from error
    dataset = tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        shuffle_files=shuffle_files,
        download=download,
        as_supervised=False,
    )
    spec = dataset.element_spec
    if not isinstance(spec, dict) or "image" not in spec:
        raise ValueError(
            "The TFDS data set has no 'image' feature. Received: "
            f"name={name!r} with elements {spec}"
        )
    has_label = "label" in spec

    def pair(example):
        image = example["image"]
        label = tf.cast(example["label"], "int32") if has_label else tf.constant(-1)
        if size is not None:
            image = resize(image, size)
        return image, label

    return dataset.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
