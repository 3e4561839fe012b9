"""The data of a run: the training and held-out images, and their views."""

import dataclasses
import os

import keras
import numpy as np

from keras_imsvd import augment
from keras_imsvd import data as data_lib
from keras_imsvd.training.config import UsageError


@dataclasses.dataclass
class Data:
    """Training and held-out images (uint8 or float32 in [0, 1]) and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(config):
    seed, size = config.seed, config.validation_size
    # Views made on the device need no TensorFlow: Pillow decodes the files.
    decoder = "pillow" if config.augment_on == "device" else None
    split = dataset_root_split(config.data_dir) if config.data_dir else None
    if split is None and size == 0:
        train, test = training_and_test_split(config)
    elif split is not None:
        # The published layout: ROOT/train for training, ROOT/val (or test)
        # for evaluation, with the same classes.
        train, test = (
            data_lib.read_image_folder(folder, config.image_size, decoder=decoder)
            for folder in split
        )
        _check_same_classes(*split)
    elif config.data_dir:
        # Evaluation needs the images in memory: uint8 keeps that at 1 byte per
        # value. For ImageNet-scale folders, use --limit.
        train, test = data_lib.load_image_folder(
            config.data_dir,
            image_size=config.image_size,
            validation_split=size,
            seed=seed,
            dtype="uint8",
            decoder=decoder,
        )
    elif config.dataset == "digits":
        train, test = data_lib.load_digits_split(test_size=size, seed=seed)
    elif config.dataset == "cifar10":
        train, test = data_lib.load_cifar10_folder(
            validation_split=size, seed=seed, decoder=decoder
        )
    else:
        images, labels = data_lib.evaluation_arrays(
            config.dataset, image_size=config.image_size, split="train"
        )
        train, test = data_lib.train_validation_split(
            images, labels, validation_split=size, seed=seed
        )
    (x_train, y_train), (x_test, y_test) = train, test
    if config.limit is not None:
        x_train, y_train = x_train[: config.limit], y_train[: config.limit]
    if len(x_train) < config.batch_size:
        raise UsageError(
            f"batch_size {config.batch_size} is larger than the training set "
            f"({len(x_train)} images)",
            field="batch_size",
        )
    return Data(x_train, np.asarray(y_train), x_test, np.asarray(y_test))


def training_and_test_split(config):
    """Every training image and the test split, for `validation_size` 0.

    The test split of a TFDS dataset comes from `tfds.load(name,
    split="test")`; the CIFAR-10 training images from the bundled archive
    where it is found, else from TFDS too.
    """
    no_split = "validation_size 0 evaluates on a test split, and {} has none: {}"
    if config.data_dir:
        raise UsageError(
            no_split.format(
                config.data_dir, "give a root holding train/ and test/ (or val/)"
            ),
            field="validation_size",
        )
    name = config.dataset
    # CIFAR-10 stays at 32 px, as its training images from the archive.
    test = _tfds_test_split(name, None if name == "cifar10" else config.image_size)
    if name != "cifar10":
        return data_lib.evaluation_arrays(
            name, image_size=config.image_size, split="train"
        ), test
    try:
        train, _ = data_lib.load_cifar10_folder(validation_split=0, seed=config.seed)
    except FileNotFoundError:
        train = data_lib.evaluation_arrays("cifar10", split="train")
    return train, test


def _tfds_test_split(name, image_size):
    try:
        return data_lib.evaluation_arrays(name, image_size=image_size, split="test")
    except Exception as error:  # TFDS raises many kinds of errors offline
        reason = " ".join(str(error).split())[:300]
        bundled = (
            " The bundled CIFAR-10 archive (cifar10_train_jpeg.tar.gz) holds "
            "the 50,000 training images only."
            if name == "cifar10"
            else ""
        )
        raise UsageError(
            f"validation_size 0 evaluates on the test split of {name}, which "
            f"tensorflow-datasets could not load ({type(error).__name__}: "
            f"{reason}).{bundled} Put the test images beside the training "
            "images (ROOT/train/, ROOT/test/, one sub-folder per class) and "
            "pass data_dir ROOT, or hold out training images with "
            "validation_size >= 1",
            field="validation_size",
        ) from None


def dataset_root_split(data_dir):
    """`(train, evaluation)` folders of a root holding `train/` and `val/` or
    `test/` (and nothing else), as the published scripts take; else `None`."""
    entries = {
        name
        for name in os.listdir(data_dir)
        if os.path.isdir(os.path.join(data_dir, name)) and not name.startswith(".")
    }
    evaluation = next((name for name in ("val", "test") if name in entries), None)
    if "train" not in entries or entries - {"train", "val", "test"}:
        return None
    if evaluation is None:
        raise UsageError(
            f"data_dir {data_dir} holds train/ but neither val/ nor test/ to "
            "evaluate on; pass the train/ folder itself to hold out images from it",
            field="data_dir",
        )
    return os.path.join(data_dir, "train"), os.path.join(data_dir, evaluation)


def _check_same_classes(train_folder, evaluation_folder):
    classes = [
        data_lib.list_image_folder(f)[2] for f in (train_folder, evaluation_folder)
    ]
    if classes[0] != classes[1]:
        raise UsageError(
            f"the class folders of {evaluation_folder} differ from those of "
            f"{train_folder}. Received: {classes[1][:5]}... against {classes[0][:5]}..."
        )


def make_views(config, channels):
    if config.views == "digits":
        return augment.digits_views(config.image_size, seed=config.seed)
    if channels != 3:
        raise UsageError(
            f"views {config.views} needs RGB images. Received: images with "
            f"{channels} channel(s)",
            field="views",
        )
    if config.views == "cifar":
        return augment.cifar_views(config.image_size, seed=config.seed)
    return augment.imagenet_views(config.image_size, seed=config.seed)


def resize(images, image_size, batch_size=512):
    """Float32 images in [0, 1] at `image_size` (bilinear), as the views see them."""
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    if images.shape[1] == image_size and images.shape[2] == image_size:
        return images.astype("float32") / scale
    out = [
        keras.ops.convert_to_numpy(
            keras.ops.image.resize(
                images[i : i + batch_size].astype("float32") / scale,
                (image_size, image_size),
            )
        )
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out).astype("float32")
