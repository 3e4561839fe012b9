"""Encoded images stored in TFRecord files: a glob of them, or a TFDS split.

ImageNet is often kept as 1,024 TFRecord files of `tf.train.Example`s, each
holding the JPEG bytes and the class of one image; TensorFlow Datasets stores
its prepared splits the same way. `TFRecordImages` names such a set of files
and the keys of the image and the label, so that `StreamingViews` and
`streaming_images` read the bytes from the records as they would from image
files, without holding the set in memory.
"""

import copy
import os

import numpy as np

from keras_imsvd.data._lazy import tf


class TFRecordImages:
    """TFRecord files of `tf.train.Example`s holding encoded images and labels.

    Each example holds the encoded image (JPEG, PNG, GIF or BMP bytes) under
    `image_key` and, optionally, an int64 class under `label_key`. The
    defaults are the keys of the ImageNet TFRecords written by TensorFlow's
    `build_imagenet_data.py`, whose classes run from 1 to 1000: pass
    `label_offset=-1` for 0-based classes. For a TFDS split, see
    `tfds_records`.

    Args:
        files: str glob pattern (`tf.io.gfile.glob`, so `gs://` works too), or
            a list of TFRecord file paths. Required.
        image_key: str, the feature holding the encoded image. Defaults to
            `"image/encoded"`.
        label_key: str or `None` (no labels: `-1`). Defaults to
            `"image/class/label"`.
        label_offset: int, added to every label. Defaults to `0`.
        num_examples: int or `None` to count the records once (one pass over
            the files, reading the record framing only). Defaults to `None`.
        compression: `""`, `"GZIP"` or `"ZLIB"`. Defaults to `""`.

    Example:

    >>> import keras_imsvd
    >>> records = keras_imsvd.data.TFRecordImages(
    ...     "imagenet/train-*", label_offset=-1, num_examples=1281167
    ... )  # doctest: +SKIP
    >>> stream = keras_imsvd.data.StreamingViews(records)  # doctest: +SKIP
    """

    def __init__(
        self,
        files,
        image_key: str = "image/encoded",
        label_key: str | None = "image/class/label",
        label_offset: int = 0,
        num_examples: int | None = None,
        compression: str = "",
    ):
        if isinstance(files, (str, os.PathLike)):
            pattern = os.fspath(files)
            files = sorted(tf.io.gfile.glob(pattern))
            if not files:
                raise ValueError(
                    f"files matches no TFRecord file. Received: files={pattern!r}"
                )
        else:
            files = [os.fspath(f) for f in files]
            if not files:
                raise ValueError(
                    "files must name at least one TFRecord file. Received: []"
                )
        if not isinstance(image_key, str) or not image_key:
            raise TypeError(
                f"image_key must be a non-empty str. Received: image_key={image_key!r}"
            )
        if label_key is not None and not isinstance(label_key, str):
            raise TypeError(
                f"label_key must be a str or None. Received: label_key={label_key!r}"
            )
        if isinstance(label_offset, bool) or not isinstance(label_offset, int):
            raise TypeError(
                f"label_offset must be an int. Received: label_offset={label_offset!r}"
            )
        if compression not in ("", "GZIP", "ZLIB"):
            raise ValueError(
                "compression must be '', 'GZIP' or 'ZLIB'. Received: "
                f"compression={compression!r}"
            )
        self.files = files
        self.image_key = image_key
        self.label_key = label_key
        self.label_offset = label_offset
        self.compression = compression
        if num_examples is None:
            num_examples = int(
                self.records(self.files).reduce(
                    tf.constant(0, "int64"), lambda count, _: count + 1
                )
            )
        if isinstance(num_examples, bool) or not isinstance(num_examples, int):
            raise TypeError(
                f"num_examples must be an int. Received: num_examples={num_examples!r}"
            )
        if num_examples < 1:
            raise ValueError(
                "num_examples must be at least 1 (the files hold no record?). "
                f"Received: num_examples={num_examples}"
            )
        self.num_examples = num_examples
        self.limit = None

    def first(self, count):
        """The first `count` records, in the order of the files: a stream of
        them reads no record after them.

        Args:
            count: int, `1 <= count <= len(self)`. Required.

        Returns:
            A `TFRecordImages` of `count` examples.
        """
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError(f"count must be an int. Received: count={count!r}")
        if not 1 <= count <= self.num_examples:
            raise ValueError(
                f"count must be in [1, {self.num_examples}]. Received: count={count}"
            )
        subset = copy.copy(self)
        subset.num_examples = subset.limit = count
        return subset

    def __len__(self):
        return self.num_examples

    def read_labels(self):
        """The labels of the records in the order of the files, read in one
        pass that parses the labels alone (`-1`s without `label_key`).

        Returns:
            int32 NumPy array `(len(self),)`.
        """
        if self.label_key is None:
            return np.full(self.num_examples, -1, "int32")
        spec = {self.label_key: tf.io.FixedLenFeature([], tf.int64)}
        labels = (
            self.serialized()
            .map(
                lambda record: tf.io.parse_single_example(record, spec)[self.label_key],
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            .batch(65536)
        )
        parts = [batch.numpy() for batch in labels]
        return (np.concatenate(parts) + self.label_offset).astype("int32")

    def __repr__(self):
        return (
            f"TFRecordImages({len(self.files)} files, {self.num_examples} "
            f"examples, image_key={self.image_key!r}, label_key={self.label_key!r})"
        )

    def serialized(self, parallel=False):
        """tf: the serialized records this source holds: every record of its
        files, or after `first(n)`, the first `n` in the order of the files
        (then read one file at a time, whatever `parallel`)."""
        if self.limit is not None:
            return self.records(self.files).take(self.limit)
        return self.records(self.files, parallel=parallel)

    def records(self, files, parallel=False):
        """tf: the serialized records of `files` (a list or a string tensor);
        with `parallel`, several files are read at once, in a fixed order."""
        files = tf.data.Dataset.from_tensor_slices(files)
        if not parallel:
            return files.flat_map(
                lambda file: tf.data.TFRecordDataset(file, self.compression)
            )
        return files.interleave(
            lambda file: tf.data.TFRecordDataset(file, self.compression),
            cycle_length=8,
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def parse(self, record):
        """tf: `(encoded image bytes, int32 label)` of one serialized example."""
        spec = {self.image_key: tf.io.FixedLenFeature([], tf.string)}
        if self.label_key is not None:
            spec[self.label_key] = tf.io.FixedLenFeature([], tf.int64)
        example = tf.io.parse_single_example(record, spec)
        if self.label_key is None:
            label = tf.constant(-1, "int32")
        else:
            label = tf.cast(example[self.label_key] + self.label_offset, "int32")
        return example[self.image_key], label


def tfds_records(name: str, split: str = "train", data_dir=None, download=True):
    """The TFRecord files of a prepared TFDS split, as `TFRecordImages`.

    Streams the stored JPEG bytes instead of the decoded images `tfds.load`
    gives, so `StreamingViews` crops them at full resolution. Works for the
    image classification sets stored as TFRecords with an `"image"` feature
    and, optionally, a `"label"` (`imagenet2012`, `imagenette`, `cifar10`,
    ...). A whole split only (`"train"`, not `"train[:10%]"`).

    Needs `tensorflow-datasets` (`pip install tensorflow-datasets`).

    Args:
        name: str, a TFDS name such as `"imagenet2012"`. Required.
        split: str, a split name. Defaults to `"train"`.
        data_dir: str or `None`, where TFDS keeps its data. Defaults to `None`.
        download: bool, prepare the data set first when it is not. Defaults to
            `True`.

    Returns:
        A `TFRecordImages` with the split's files and example count.

    Example:

    >>> import keras_imsvd
    >>> records = keras_imsvd.data.tfds_records("imagenet2012")  # doctest: +SKIP
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a TFDS name (str). Received: name={name!r}")
    if not isinstance(split, str) or not split.isidentifier():
        raise ValueError(
            "split must name a whole split such as 'train' or 'validation'. "
            f"Received: split={split!r}"
        )
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            f"Streaming the TFDS data set {name!r} needs tensorflow-datasets: "
            "pip install tensorflow-datasets"
        ) from error
    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    info = builder.info
    if split not in info.splits:
        raise ValueError(
            f"The TFDS data set {name!r} has no split {split!r}. Received: "
            f"split={split!r}; it has {sorted(info.splits)}"
        )
    file_format = str(getattr(info, "file_format", "tfrecord")).lower()
    if "tfrecord" not in file_format:
        raise ValueError(
            f"The TFDS data set {name!r} is stored as {file_format}, not as "
            "TFRecords; load it with keras_imsvd.data.tfds_dataset instead"
        )
    features = info.features
    if "image" not in features:
        raise ValueError(
            f"The TFDS data set {name!r} has no 'image' feature. Received: "
            f"features {sorted(features.keys())}"
        )
    split_info = info.splits[split]
    return TFRecordImages(
        [os.fspath(path) for path in split_info.filepaths],
        image_key="image",
        label_key="label" if "label" in features else None,
        num_examples=int(split_info.num_examples),
    )


def labels_to_stream(files, labels):
    """The labels to pass with `files` to `StreamingViews` or
    `streaming_images`: `labels`, or `None` for a `TFRecordImages`, whose
    records carry their own."""
    return None if isinstance(files, TFRecordImages) else labels
