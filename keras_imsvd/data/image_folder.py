"""Images in one sub-folder per class (the layout of ImageNet's train/)."""

import concurrent.futures
import hashlib
import os
from pathlib import Path

import numpy as np

from keras_imsvd._validation import check_image_size
from keras_imsvd.data._images import resize
from keras_imsvd.data._lazy import tf
from keras_imsvd.data.paths import default_cache_dir
from keras_imsvd.data.split import _split_arrays

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# First bytes of the formats tf.io.decode_image reads.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")


def list_image_folder(path) -> tuple[list[str], np.ndarray, list[str]]:
    """Lists the images of a folder with one sub-folder per class.

    Class `i` is the `i`-th sub-folder in sorted order; images are found at any
    depth below it by extension (`.jpg`, `.jpeg`, `.png`, `.bmp`, `.gif`, any
    case). Hidden entries, and entries that are not regular files (FIFOs,
    sockets, devices, broken links), are skipped.

    Args:
        path: str or `Path`, the folder.

    Returns:
        `(files, labels, class_names)`: file paths, int32 labels, sub-folder names.

    Example:

    >>> import keras_imsvd
    >>> files, labels, class_names = keras_imsvd.data.list_image_folder(
    ...     "imagenet/train"
    ... )  # doctest: +SKIP
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"Image folder not found. Received: path={str(path)!r}")
    if not folder.is_dir():
        raise ValueError(
            "path must be a folder with one sub-folder per class. "
            f"Received: path={str(path)!r}, which is a file"
        )
    class_dirs = sorted(
        entry
        for entry in folder.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not class_dirs:
        loose = any(_is_image(entry.name) for entry in folder.iterdir())
        raise ValueError(
            "path must hold one sub-folder per class (the layout of ImageNet's "
            "train/), but it has no sub-folder"
            + (" (its images sit directly in it)" if loose else "")
            + f". Received: path={str(path)!r}"
        )
    files, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        class_files = _image_files(os.fspath(class_dir))
        files.extend(class_files)
        labels.extend([label] * len(class_files))
    if not files:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in the class "
            f"sub-folders of path. Received: path={str(path)!r}"
        )
    return files, np.asarray(labels, "int32"), [d.name for d in class_dirs]


def image_folder_dataset(
    path,
    image_size,
    channels: int = 3,
    crop_to_aspect_ratio: bool = True,
    shuffle: bool = False,
    seed: int | None = None,
):
    """A `tf.data.Dataset` of decoded, resized `(image, label)` pairs from a folder.

    Files are decoded in parallel. A file that is not a JPEG, PNG, BMP or GIF
    fails when read with an error that names it.

    Args:
        path: str or `Path`, a folder with one sub-folder per class.
        image_size: int or `(height, width)`; every image is resized to it.
        channels: 1 or 3, channels of the decoded images. Defaults to `3`.
        crop_to_aspect_ratio: bool; resize the largest centred crop with the
            target aspect ratio (true) or stretch the whole image (false).
            Defaults to `True`.
        shuffle: bool, shuffle the file order at every iteration. Defaults to
            `False`.
        seed: int or `None`, seed of the shuffle. Defaults to `None`.

    Returns:
        A dataset of `(uint8 image (height, width, channels), int32 label)`.

    Example:

    >>> import keras_imsvd
    >>> ds = keras_imsvd.data.image_folder_dataset(
    ...     "imagenet/train", 224
    ... )  # doctest: +SKIP
    """
    size = check_image_size(image_size, allow_none=False)
    _check_channels(channels)
    files, labels, _ = list_image_folder(path)
    dataset = tf.data.Dataset.from_tensor_slices((files, labels))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    def decode(file, label):
        return _decode_file(file, channels, size, crop_to_aspect_ratio), label

    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def load_image_folder(
    path,
    image_size,
    validation_split: float | int = 0.1,
    seed: int | None = 0,
    channels: int = 3,
    crop_to_aspect_ratio: bool = True,
    dtype: str = "float32",
    cache: bool = False,
    cache_dir=None,
    decoder: str | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Decodes a class-folder image set into arrays, split for validation.

    Args:
        path: str or `Path`, a folder with one sub-folder per class.
        image_size: int or `(height, width)`; every image is resized to it.
        validation_split: float fraction in [0, 1) or int count of validation
            images, stratified by class. Defaults to `0.1`.
        seed: int or `None`, seed of the split. Defaults to `0`.
        channels: 1 or 3. Defaults to `3`.
        crop_to_aspect_ratio: bool, see `image_folder_dataset`. Defaults to `True`.
        dtype: `"float32"` for values in [0, 1], or `"uint8"` for 0-255 (a
            quarter of the memory; `multiview_dataset` accepts both). Defaults to
            `"float32"`.
        cache: bool; keep the decoded images in a `.npz` file under `cache_dir`
            and read them from it next time. Defaults to `False`.
        cache_dir: str, `Path` or `None` for `default_cache_dir()`. Defaults to
            `None`.
        decoder: `"tensorflow"`, `"pillow"` or `None`, see
            `read_image_folder`. Defaults to `None`.

    Returns:
        `((x_train, y_train), (x_validation, y_validation))`, images
        `(n, height, width, channels)` and int32 labels.

    Example:

    >>> import keras_imsvd
    >>> (x, y), (x_val, y_val) = keras_imsvd.data.load_image_folder(
    ...     "my_images", 64, validation_split=0.1
    ... )  # doctest: +SKIP
    """
    _check_dtype(dtype)
    images, labels = read_image_folder(
        path, image_size, channels, crop_to_aspect_ratio, cache, cache_dir, decoder
    )
    train, validation = _split_arrays(
        images, labels, validation_split, seed, "validation_split"
    )
    if dtype == "float32":
        train = (_unit_float(train[0]), train[1])
        validation = (_unit_float(validation[0]), validation[1])
    return train, validation


def read_image_folder(
    path,
    image_size,
    channels=3,
    crop_to_aspect_ratio=True,
    cache=False,
    cache_dir=None,
    decoder=None,
) -> tuple[np.ndarray, np.ndarray]:
    """All images of a class folder as one uint8 array, in file order.

    Args:
        path: str or `Path`, a folder with one sub-folder per class.
        image_size: int or `(height, width)`.
        channels: 1 or 3. Defaults to `3`.
        crop_to_aspect_ratio: bool, see `image_folder_dataset`. Defaults to `True`.
        cache: bool, read from / write to a `.npz` file in `cache_dir`. Defaults
            to `False`.
        cache_dir: str, `Path` or `None` for `default_cache_dir()`. Defaults to
            `None`.
        decoder: `"tensorflow"` (`tf.io.decode_image` and `tf.image.resize`),
            `"pillow"` (Pillow, without TensorFlow: the same JPEG pixels within
            the rounding of the decoders, and Pillow's antialiased bilinear
            resize), or `None` for TensorFlow when it can be imported, else
            Pillow. Defaults to `None`.

    Returns:
        `(images, labels)`: uint8 `(N, height, width, channels)`, int32 `(N,)`.

    Example:

    >>> import keras_imsvd
    >>> x, y = keras_imsvd.data.read_image_folder("my_images", 64)  # doctest: +SKIP
    """
    size = check_image_size(image_size, allow_none=False)
    _check_channels(channels)
    decoder = _resolve_decoder(decoder)
    files, labels, _ = list_image_folder(path)
    cache_file = None
    if cache:
        key = "|".join(
            [str(Path(path).resolve()), str(size), str(channels)]
            + [str(crop_to_aspect_ratio), str(len(files))]
            + (["pillow"] if decoder == "pillow" else [])
        )
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        cache_file = folder / f"image_folder_{digest}.npz"
        if cache_file.exists():
            with np.load(cache_file) as stored:
                if len(stored["labels"]) == len(files):
                    return stored["images"], stored["labels"]
    if decoder == "pillow":
        images = _read_with_pillow(files, channels, size, crop_to_aspect_ratio, path)
    else:
        images = _read_with_tensorflow(
            files, channels, size, crop_to_aspect_ratio, path
        )
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.partial.npz")
        np.savez(partial, images=images, labels=labels)
        os.replace(partial, cache_file)
    return images, labels


def _resolve_decoder(decoder):
    if decoder is None:
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            return "pillow"
        return "tensorflow"
    if decoder not in ("tensorflow", "pillow"):
        raise ValueError(
            "decoder must be 'tensorflow', 'pillow' or None. "
            f"Received: decoder={decoder!r}"
        )
    return decoder


def _read_with_tensorflow(files, channels, size, crop_to_aspect_ratio, path):
    images = np.empty((len(files),) + size + (channels,), dtype="uint8")
    dataset = tf.data.Dataset.from_tensor_slices(files)
    dataset = dataset.map(
        lambda file: _decode_file(file, channels, size, crop_to_aspect_ratio),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).batch(1024)
    try:
        start = 0
        for batch in dataset:
            images[start : start + len(batch)] = batch.numpy()
            start += len(batch)
    except tf.errors.OpError as error:
        bad = _find_unreadable(files, channels)
        if bad is None:
            raise
        raise ValueError(
            f"Could not decode the image file {bad!r} (in path={str(path)!r})."
        ) from error
    return images


def _read_with_pillow(files, channels, size, crop_to_aspect_ratio, path):
    """The images of `files` decoded and resized by Pillow, in threads."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "Reading images without TensorFlow needs Pillow: pip install pillow"
        ) from error
    images = np.empty((len(files),) + size + (channels,), dtype="uint8")

    def read(index):
        images[index] = _pillow_image(
            files[index], channels, size, crop_to_aspect_ratio
        )

    # Pillow releases the GIL while it decodes and resizes.
    workers = min(32, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        try:
            for _ in pool.map(read, range(len(files)), chunksize=256):
                pass
        except _UnreadableImage as error:
            raise ValueError(
                f"Could not decode the image file {error.file!r} "
                f"(in path={str(path)!r})."
            ) from error.__cause__
    return images


class _UnreadableImage(Exception):
    def __init__(self, file):
        super().__init__(file)
        self.file = file


def _pillow_image(file, channels, size, crop_to_aspect_ratio):
    """One image file as uint8 `(height, width, channels)`, as `_decode_file`."""
    from PIL import Image

    height, width = size
    try:
        with Image.open(file) as opened:
            image = opened.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, SyntaxError) as error:
        raise _UnreadableImage(file) from error
    in_w, in_h = image.size
    box = (0, 0, in_w, in_h)
    if crop_to_aspect_ratio:
        # The centred crop of `resize` (tf.round rounds half to even, as round).
        target = width / height
        crop_h = max(min(in_h, round(in_w / target)), 1)
        crop_w = max(min(in_w, round(in_h * target)), 1)
        top, left = (in_h - crop_h) // 2, (in_w - crop_w) // 2
        box = (left, top, left + crop_w, top + crop_h)
    if (in_w, in_h) != (width, height) or box != (0, 0, in_w, in_h):
        # Pillow's bilinear filter widens with the reduction: antialiased.
        image = image.resize((width, height), Image.Resampling.BILINEAR, box=box)
    array = np.asarray(image, dtype="uint8")
    return array[..., None] if channels == 1 else array


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _image_files(folder):
    """Image files at any depth below `folder`, sorted per folder, files first.

    Only regular files (or links to them) are listed: reading a FIFO, socket or
    device named like an image could block forever, out of reach of Ctrl-C.
    Hidden entries and links to folders are skipped.
    """
    files, subfolders = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
            # `is_file` is S_ISREG of the entry (of its target for a link).
            elif _is_image(entry.name) and entry.is_file(follow_symlinks=True):
                files.append(entry.path)
    files.sort()
    for subfolder in sorted(subfolders):
        files.extend(_image_files(subfolder))
    return files


def _check_channels(channels):
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3. Received: channels={channels!r}")


def _check_dtype(dtype):
    if dtype not in ("float32", "uint8"):
        raise ValueError(
            f"dtype must be 'float32' or 'uint8'. Received: dtype={dtype!r}"
        )


def _unit_float(images):
    images = images.astype("float32")
    images /= 255.0
    return images


def _decode_file(file, channels, size, crop_to_aspect_ratio):
    """tf: reads, checks, decodes and resizes one image file to uint8."""
    contents = tf.io.read_file(file)
    known = tf.reduce_any(
        [
            tf.equal(tf.strings.substr(contents, 0, len(signature)), signature)
            for signature in _SIGNATURES
        ]
    )
    check = tf.debugging.Assert(
        known, ["Unreadable image file (not JPEG, PNG, BMP or GIF):", file]
    )
    with tf.control_dependencies([check]):
        contents = tf.identity(contents)
    image = tf.io.decode_image(contents, channels=channels, expand_animations=False)
    image.set_shape((None, None, channels))
    return resize(image, size, crop_to_aspect_ratio)


def _find_unreadable(files, channels):
    """The first file that does not decode, found one by one, or `None`."""
    for file in files:
        try:
            tf.io.decode_image(
                tf.io.read_file(file), channels=channels, expand_animations=False
            )
        except tf.errors.OpError:
            return file
    return None
