"""The data of a run read from disk while it trains (ImageNet scale).

An image folder, a root of TFRecord files or a TFDS data set trained with the
ImageNet views is never decoded into memory: the training views are streamed
from the files or records (`keras_imsvd.data.StreamingViews`, crops at full
resolution), the final evaluation computes its features batch by batch into
arrays or memmaps, and the per-epoch kNN monitor uses a fixed subset held in
memory.
"""

import dataclasses
import os

import numpy as np

from keras_imsvd import data as data_lib
from keras_imsvd import evaluation
from keras_imsvd.data.records import labels_to_stream
from keras_imsvd.training.config import UsageError
from keras_imsvd.training.data import _check_same_classes
from keras_imsvd.training.data import dataset_root_split
from keras_imsvd.training.data import training_and_test_split

# Images per split decoded into memory for the per-epoch kNN monitor.
MONITOR_TRAIN, MONITOR_TEST = 1024, 512


class Files:
    """A list of image files, or a `TFRecordImages`, that answers `len` and
    `shape` as image arrays do."""

    def __init__(self, files, image_size):
        self.files = files
        self.shape = (len(files), image_size, image_size, 3)

    def __len__(self):
        return len(self.files)


@dataclasses.dataclass
class StreamedData:
    """Training and held-out files and labels; images are read when needed."""

    x_train: Files
    y_train: np.ndarray
    x_test: Files
    y_test: np.ndarray


def load_streamed(config):
    """The files or records of the run; `--limit N` keeps the first N of a
    seeded shuffle of the training files (the first N records), so no other
    is ever read."""
    records = record_split(config)
    if records is not None:
        train, test = records
        if config.limit is not None:
            train = train.first(min(config.limit, len(train)))
        return _checked_size(
            config,
            StreamedData(
                Files(train, config.image_size),
                train.read_labels(),
                Files(test, config.image_size),
                test.read_labels(),
            ),
        )
    split = dataset_root_split(config.data_dir)
    if split is None and config.validation_size == 0:
        training_and_test_split(config)  # raises: a class folder has no test split
    if split is not None:
        (train_files, y_train, _), (test_files, y_test, _) = (
            data_lib.list_image_folder(folder) for folder in split
        )
        _check_same_classes(*split)
    else:
        files, labels, _ = data_lib.list_image_folder(config.data_dir)
        (index_train, y_train), (index_test, y_test) = data_lib.train_validation_split(
            np.arange(len(files)),
            labels,
            validation_split=config.validation_size,
            seed=config.seed,
        )
        train_files = [files[i] for i in index_train]
        test_files = [files[i] for i in index_test]
    if config.limit is not None:
        keep = np.sort(
            np.random.default_rng(config.seed).permutation(len(train_files))[
                : config.limit
            ]
        )
        train_files = [train_files[i] for i in keep]
        y_train = np.asarray(y_train)[keep]
    size = config.image_size
    return _checked_size(
        config,
        StreamedData(
            Files(train_files, size),
            np.asarray(y_train),
            Files(test_files, size),
            np.asarray(y_test),
        ),
    )


def _checked_size(config, data):
    if len(data.x_train) < config.batch_size:
        raise UsageError(
            f"batch_size {config.batch_size} is larger than the training set "
            f"({len(data.x_train)} images)",
            field="batch_size",
        )
    return data


def record_split(config):
    """`(training, evaluation)` `TFRecordImages` of a TFDS name or of a root
    of TFRecord files; `None` for an image folder.

    Both evaluate on their own held-out split, as a root holding `train/` and
    `val/` does: TFDS's `validation` split (else `test`), or the root's
    `validation-*` (else `val-*`, `test-*`) files.
    """
    if config.data_dir:
        return dataset_record_split(config.data_dir)
    name = config.dataset
    try:
        train = data_lib.tfds_records(name, "train")
        for split in ("validation", "test"):
            try:
                return train, data_lib.tfds_records(name, split, download=False)
            except ValueError as error:
                if "has no split" not in str(error):
                    raise
    except Exception as error:  # TFDS raises many kinds of errors offline
        reason = " ".join(str(error).split())[:300]
        raise UsageError(
            f"dataset {name}: tensorflow-datasets could not stream it "
            f"({type(error).__name__}: {reason})",
            field="dataset",
        ) from None
    raise UsageError(
        f"dataset {name} has no validation or test split to evaluate on",
        field="dataset",
    )


def dataset_record_split(data_dir):
    """`(training, evaluation)` `TFRecordImages` of a root holding TFRecord
    files named `train-*` and `validation-*` (or `val-*`, `test-*`), as
    TensorFlow's ImageNet scripts write them; else `None`.

    The labels are read as stored (`image/class/label`, 1 to 1000 for those
    scripts' ImageNet).
    """
    names = sorted(
        name
        for name in os.listdir(data_dir)
        if os.path.isfile(os.path.join(data_dir, name))
        and not name.lower().endswith(data_lib.IMAGE_EXTENSIONS)
    )
    train = [name for name in names if name.startswith("train-")]
    if not train:
        return None
    for prefix in ("validation-", "val-", "test-"):
        evaluation = [name for name in names if name.startswith(prefix)]
        if evaluation:
            break
    else:
        raise UsageError(
            f"data_dir {data_dir} holds train-* TFRecord files but no "
            "validation-*, val-* or test-* files to evaluate on",
            field="data_dir",
        )
    return tuple(
        data_lib.TFRecordImages([os.path.join(data_dir, name) for name in part])
        for part in (train, evaluation)
    )


def training_stream(config, data, views, num_shards=1, shard_index=0):
    """The `StreamingViews` of the training files."""
    return data_lib.StreamingViews(
        data.x_train.files,
        labels_to_stream(data.x_train.files, data.y_train),
        views=views,
        image_size=config.image_size,
        batch_size=config.batch_size // num_shards,
        seed=config.seed,
        num_shards=num_shards,
        shard_index=shard_index,
    )


def monitor_images(config, data):
    """Float32 images and labels of a seeded subset of the training and
    held-out files, decoded into memory for the per-epoch kNN monitor."""
    out = []
    rng = np.random.default_rng(config.seed)
    for files, labels, count in (
        (data.x_train.files, data.y_train, MONITOR_TRAIN),
        (data.x_test.files, data.y_test, MONITOR_TEST),
    ):
        if isinstance(files, data_lib.TFRecordImages):
            # The first records: their files are shuffled when written.
            stream = data_lib.streaming_images(
                files.first(min(count, len(files))), None, config.image_size
            )
        else:
            keep = np.sort(rng.permutation(len(files))[:count])
            stream = data_lib.streaming_images(
                [files[i] for i in keep], labels[keep], config.image_size
            )
        images, kept = zip(*((x.numpy(), y.numpy()) for x, y in stream))
        out.append((np.concatenate(images), np.concatenate(kept)))
    return out


def features(config, encoder, files, labels, verbose=0):
    """Features of `files` computed batch by batch (an array, or a memmap in a
    temporary file beyond 1 GiB), and the labels of the images read."""
    stream = data_lib.streaming_images(
        files, labels_to_stream(files, labels), config.image_size
    )
    return evaluation.extract_features_to_file(
        encoder, stream, len(files), verbose=verbose
    )


def checked(name, features, rows=65536):
    """`features` (array or memmap) after a chunked check that all are finite."""
    from keras_imsvd.training.evaluate import RunFailed

    for start in range(0, len(features), rows):
        if not np.isfinite(features[start : start + rows]).all():
            raise RunFailed(
                f"the {name} features hold non-finite values; the evaluation "
                "would mean nothing"
            )
    return features
