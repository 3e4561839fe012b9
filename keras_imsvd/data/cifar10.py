"""CIFAR-10 training images from the shared JPEG archive, without network."""

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from keras_imsvd.data.image_folder import _check_dtype
from keras_imsvd.data.image_folder import load_image_folder
from keras_imsvd.data.paths import SHARED_ENV
from keras_imsvd.data.paths import _find_shared_dir
from keras_imsvd.data.paths import default_cache_dir

CIFAR10_ARCHIVE = "cifar10_train_jpeg.tar.gz"
# Names the archive file itself, wherever it is.
ARCHIVE_ENV = "KERAS_IMSVD_CIFAR10_ARCHIVE"
CIFAR10_CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# Written after a complete extraction, so an interrupted one is redone.
_COMPLETE = ".complete"


def find_cifar10_archive(shared_dir=None) -> Path:
    """Locates `datasets/cifar10/cifar10_train_jpeg.tar.gz` in the shared folder.

    The environment variable `KERAS_IMSVD_CIFAR10_ARCHIVE`, when set, names
    the archive file itself and takes precedence over `shared_dir`.

    Args:
        shared_dir: str, `Path` or `None` for the shared folder of a checkout
            (the `KERAS_IMSVD_SHARED` variable, else `../shared` beside the
            repository). Defaults to `None`.

    Returns:
        The archive path.

    Example:

    >>> import keras_imsvd
    >>> archive = keras_imsvd.data.find_cifar10_archive()  # doctest: +SKIP
    """
    if os.environ.get(ARCHIVE_ENV):
        archive = Path(os.environ[ARCHIVE_ENV]).expanduser()
        if not archive.is_file():
            raise FileNotFoundError(
                f"{ARCHIVE_ENV} names no file. Received: "
                f"{ARCHIVE_ENV}={os.environ[ARCHIVE_ENV]!r}"
            )
        return archive
    shared = Path(shared_dir).expanduser() if shared_dir else _find_shared_dir()
    archive = shared / "datasets" / "cifar10" / CIFAR10_ARCHIVE if shared else None
    if archive is None or not archive.is_file():
        raise FileNotFoundError(
            f"The CIFAR-10 archive {CIFAR10_ARCHIVE} was not found (looked in "
            f"{archive if archive else '../shared/datasets/cifar10'}). Set "
            f"{SHARED_ENV} to the folder holding datasets/cifar10/ (or "
            f"{ARCHIVE_ENV} to the archive), or use "
            "multiview_dataset('cifar10') to load it with tensorflow-datasets. "
            f"Received: shared_dir={shared_dir!r}"
        )
    return archive


def extract_cifar10_archive(archive=None, cache_dir=None) -> Path:
    """Extracts the CIFAR-10 JPEG archive into the cache once.

    A later call finds the extracted folder and returns at once.

    Args:
        archive: str, `Path` or `None` for `find_cifar10_archive()`. Defaults to
            `None`.
        cache_dir: str, `Path` or `None` for `default_cache_dir()`
            (`~/.cache/keras_imsvd`). Defaults to `None`.

    Returns:
        The `train/` folder: one sub-folder per class, 5,000 JPEG files each.

    Example:

    >>> import keras_imsvd
    >>> train_dir = keras_imsvd.data.extract_cifar10_archive()  # doctest: +SKIP
    """
    archive = Path(archive).expanduser() if archive else find_cifar10_archive()
    if not archive.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 archive not found. Received: archive={str(archive)!r}"
        )
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    target = cache / "cifar10_train_jpeg"
    if (target / _COMPLETE).exists():
        return target / "train"
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="cifar10_", dir=cache))
    os.chmod(staging, 0o755)
    try:
        with tarfile.open(archive) as tar:
            _extract(tar, staging)
        if not (staging / "train").is_dir():
            raise ValueError(
                "The archive has no train/ folder at its top. "
                f"Received: archive={str(archive)!r}"
            )
        (staging / _COMPLETE).touch()
        if target.exists():  # an interrupted extraction
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / _COMPLETE).exists():  # not a concurrent extraction
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target / "train"


def load_cifar10_folder(
    path=None,
    validation_split: float | int = 5000,
    seed: int | None = 0,
    dtype: str = "float32",
    cache_dir=None,
    decoder: str | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The 50,000 CIFAR-10 training images as arrays, with a validation split.

    The first call extracts the shared archive (about 10 s) and decodes the JPEG
    files (about 10 s on two cores); the decoded images are kept in a `.npz` file
    in the cache, which later calls read in under a second.

    Args:
        path: a CIFAR-10 `train/` folder (one sub-folder per class), or `None` to
            extract the shared archive with `extract_cifar10_archive`. Defaults to
            `None`.
        validation_split: int count or float fraction of images held out for
            validation, stratified by class. Defaults to `5000`.
        seed: int or `None`, seed of the split. Defaults to `0`.
        dtype: `"float32"` for [0, 1] (600 MB for all images) or `"uint8"` for
            0-255 (150 MB). Defaults to `"float32"`.
        cache_dir: str, `Path` or `None` for `default_cache_dir()`. Defaults to
            `None`.
        decoder: `"tensorflow"`, `"pillow"` (no TensorFlow needed) or `None`
            for TensorFlow when it can be imported, else Pillow; see
            `read_image_folder`. Defaults to `None`.

    Returns:
        `((x_train, y_train), (x_validation, y_validation))`: images
        `(n, 32, 32, 3)`, int32 labels indexing `CIFAR10_CLASS_NAMES`.

    Example:

    >>> import keras_imsvd
    >>> (x, y), (x_val, y_val) = keras_imsvd.data.load_cifar10_folder(
    ...     dtype="uint8"
    ... )  # doctest: +SKIP
    >>> x.shape, x_val.shape  # doctest: +SKIP
    ((45000, 32, 32, 3), (5000, 32, 32, 3))
    """
    _check_dtype(dtype)  # before the archive is extracted
    if path is None:
        path = extract_cifar10_archive(cache_dir=cache_dir)
    return load_image_folder(
        path,
        32,
        validation_split=validation_split,
        seed=seed,
        dtype=dtype,
        cache=True,
        cache_dir=cache_dir,
        decoder=decoder,
    )


def _extract(tar, destination):
    if hasattr(tarfile, "data_filter"):
        tar.extractall(destination, filter="data")
        return
    # Pythons without extraction filters: refuse members escaping `destination`.
    root = Path(destination).resolve()
    for member in tar.getmembers():
        target = (root / member.name).resolve()
        if root not in target.parents and target != root:
            raise ValueError(f"Unsafe path in the archive: {member.name!r}")
        if not (member.isfile() or member.isdir()):
            raise ValueError(f"Unexpected link in the archive: {member.name!r}")
    tar.extractall(destination)
