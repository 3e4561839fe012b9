"""Two-view batches streamed from image files, cropped at full resolution.

An ImageNet-size folder does not fit in memory, and a crop of a copy already
shrunk to the view size is an upsampled patch. Here each epoch reads the files
again: the crop window is drawn from the image's own size (read from the JPEG
header), only that window is decoded (`tf.io.decode_and_crop_jpeg`, once per
view from the same bytes) and resized to the view size, and the rest of each
view (colour jitter, grayscale, blur, solarization) runs on the batch. Memory
holds a few batches, whatever the number of files.
"""

import os

import keras
import numpy as np

from keras_imsvd._keras_compat import ops_backend
from keras_imsvd._validation import VIEW_KEYS
from keras_imsvd._validation import check_positive_int
from keras_imsvd.augment.random_resized_crop import RandomResizedCrop
from keras_imsvd.augment.views import imagenet_views
from keras_imsvd.data._images import resize
from keras_imsvd.data._images import to_unit_float
from keras_imsvd.data._lazy import tf
from keras_imsvd.data.image_folder import _SIGNATURES
from keras_imsvd.data.image_folder import list_image_folder

_JPEG = _SIGNATURES[0]
# Epochs of an endless stream: more than any run trains.
_MAX_EPOCHS = 1 << 30


def list_image_files(path, split: str = "train"):
    """The files and labels of a class folder, or of a root's `train/` or `val/`.

    Args:
        path: str or `Path`, a folder with one sub-folder per class, or a root
            holding `train/` and `val/` (the published ImageNet layout).
        split: str, the sub-folder of a root to list. Defaults to `"train"`.

    Returns:
        `(files, labels, class_names)`, as `list_image_folder`.

    Example:

    >>> import keras_imsvd
    >>> files, labels, names = keras_imsvd.data.list_image_files(
    ...     "imagenet", "val"
    ... )  # doctest: +SKIP
    """
    folder = os.path.expanduser(os.fspath(path))
    if os.path.isdir(os.path.join(folder, "train")):
        folder = os.path.join(folder, split)
    return list_image_folder(folder)


def process_shard():
    """`(num_shards, shard_index)` of this process in a multi-process run.

    JAX: `jax.process_count()` and `jax.process_index()`; PyTorch: the
    `torch.distributed` world size and rank once initialised, else the
    `WORLD_SIZE` and `RANK` variables that `torchrun` sets; TensorFlow: `(1,
    0)`, since `tf.distribute` shards the dataset itself.

    Returns:
        A pair of ints.

    Example:

    >>> import keras_imsvd
    >>> keras_imsvd.data.process_shard()
    (1, 0)
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.process_count(), jax.process_index()
    if backend == "torch":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    return 1, 0


class StreamingViews:
    """Two-view batches of image files, read, cropped and decoded every epoch.

    Per epoch `e`: the files are shuffled by a permutation drawn from `(seed,
    e)` alone (so a resumed epoch sees the same order), shard `shard_index` of
    `num_shards` takes every `num_shards`-th file of it, and each file is read
    and decoded into two views:

    - the crop window of each view is drawn as the view's `RandomResizedCrop`
      draws it (torchvision's 10 tries, then the centred fallback), from the
      image's full size and uniforms seeded by `(seed, e, position)`;
    - JPEGs decode only that window (`tf.io.decode_and_crop_jpeg`); PNG, GIF
      and BMP decode whole, then crop. The crop is resized to `image_size`
      (bilinear, antialiased), flipped with the crop layer's draw, rounded to
      uint8;
    - batches of `batch_size` (within an epoch) go through the other layers of
      each view, and come out as float32 in [0, 1].

    Files that are not JPEG, PNG, GIF or BMP are skipped and counted
    (`skipped`); truncated JPEGs decode with their missing rows gray; CMYK,
    grayscale and RGBA files decode to RGB. A file that still fails to decode
    is dropped with a warning that names the error. No file ends the stream.

    Args:
        files: list of image file paths. Required.
        labels: int labels `(len(files),)`, or `None`. Defaults to `None`.
        views: pair of view pipelines whose first layer is a
            `RandomResizedCrop`, or `None` for `imagenet_views(image_size,
            seed)`. A single pipeline (a tuple of one) gives one view per
            image, as a linear evaluation trains on. Defaults to `None`.
        image_size: int, output height and width. Defaults to `224`.
        batch_size: int, images per batch (per process). Defaults to `256`.
        seed: int, seed of the order and the crop windows. Defaults to `0`.
        shuffle: bool, a new order every epoch. Defaults to `True`.
        num_shards: int or `None` for `process_shard()`. Defaults to `None`.
        shard_index: int or `None` for `process_shard()`. Defaults to `None`.
        with_labels: bool, yield `(views, labels)`. Defaults to `False`.

    Example:

    >>> import keras_imsvd
    >>> files, labels, _ = keras_imsvd.data.list_image_files("imagenet")
    >>> stream = keras_imsvd.data.StreamingViews(files, batch_size=256)
    >>> model.fit(
    ...     stream.dataset(), epochs=100, steps_per_epoch=stream.steps_per_epoch,
    ...     callbacks=[stream.callback()],
    ... )  # doctest: +SKIP
    """

    def __init__(
        self,
        files,
        labels=None,
        views=None,
        image_size: int = 224,
        batch_size: int = 256,
        seed: int = 0,
        shuffle: bool = True,
        num_shards: int | None = None,
        shard_index: int | None = None,
        with_labels: bool = False,
    ):
        self.files = [os.fspath(f) for f in files]
        if not self.files:
            raise ValueError("files must list at least one image file. Received: []")
        if labels is None:
            labels = np.full(len(self.files), -1, "int32")
        self.labels = np.asarray(labels, "int32")
        if self.labels.shape != (len(self.files),):
            raise ValueError(
                "labels must have one label per file. Received: "
                f"labels.shape={self.labels.shape}, {len(self.files)} files"
            )
        self.image_size = check_positive_int("image_size", image_size)
        self.batch_size = check_positive_int("batch_size", batch_size)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int. Received: seed={seed!r}")
        self.seed = seed
        self.shuffle = shuffle
        if num_shards is None or shard_index is None:
            num_shards, shard_index = process_shard()
        self.num_shards = check_positive_int("num_shards", num_shards)
        if not 0 <= shard_index < num_shards:
            raise ValueError(
                "shard_index must be in [0, num_shards). Received: "
                f"shard_index={shard_index}, num_shards={num_shards}"
            )
        self.shard_index = shard_index
        self.with_labels = with_labels
        self.views = tuple(views or imagenet_views(image_size, seed=seed))
        if len(self.views) not in (1, 2):
            raise ValueError(
                "views must be one view pipeline or two. Received: "
                f"{len(self.views)} views"
            )
        self._crops = [_crop_layer(view) for view in self.views]
        self._skipped = None

    @property
    def files_per_epoch(self):
        """Files this shard reads per epoch."""
        return len(range(self.shard_index, len(self.files), self.num_shards))

    @property
    def steps_per_epoch(self):
        """Batches per epoch, the same on every shard: full batches of the
        smallest shard (the rest of an epoch's files are not read)."""
        return len(self.files) // self.num_shards // self.batch_size

    @property
    def skipped(self):
        """Files skipped so far as unreadable (counted as they are read)."""
        return 0 if self._skipped is None else int(self._skipped.numpy())

    def order(self, epoch):
        """Indices into `files` that this shard reads in `epoch`, in order."""
        return self._order(tf.constant(epoch, "int64")).numpy()

    def images(self, epoch=0):
        """The per-image `(view_1, view_2, label)` uint8 stream of one epoch
        (`(view_1, label)` for one view), before the batch layers (jitter,
        grayscale, blur, solarize)."""
        self._counter()
        return self._epoch_images(tf.constant(epoch, "int64")).map(
            lambda views, label: (*views, label)
        )

    def dataset(self, initial_epoch: int = 0, epochs: int | None = None):
        """Batches from `initial_epoch` on: `epochs` epochs, or endless.

        Pass `steps_per_epoch` to `fit` with the endless stream: each epoch
        then reads its own order, and a run resumed at epoch `e` reads the
        same files in the same order as it first did.

        Args:
            initial_epoch: int, the first epoch. Defaults to `0`.
            epochs: int or `None` for an endless stream. Defaults to `None`.

        Returns:
            A `tf.data.Dataset` of `{"view_1": x1, "view_2": x2}` (with
            `with_labels`, `(views, labels)`), float32 in [0, 1].
        """
        self._counter()
        end = _MAX_EPOCHS if epochs is None else initial_epoch + epochs
        dataset = tf.data.Dataset.range(initial_epoch, end).flat_map(
            lambda epoch: (
                self._epoch_images(epoch)
                .batch(self.batch_size, drop_remainder=True)
                .take(self.steps_per_epoch)
            )
        )
        dataset = dataset.map(self._batch_views, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def callback(self, log=print):
        """A Keras callback that logs the files skipped in each epoch."""
        return SkippedFilesLogger(self, log)

    def _counter(self):
        if self._skipped is None:
            with tf.init_scope():
                self._skipped = tf.Variable(0, dtype="int64", trainable=False)

    def _order(self, epoch):
        count = len(self.files)
        if self.shuffle:
            noise = tf.random.stateless_uniform(
                [count], seed=tf.stack([tf.cast(self.seed, "int64"), epoch])
            )
            order = tf.argsort(noise, stable=True)
        else:
            order = tf.range(count)
        return order[self.shard_index :: self.num_shards]

    def _epoch_images(self, epoch):
        order = self._order(epoch)
        positions = tf.range(tf.size(order, out_type=tf.int64), dtype=tf.int64)
        files = tf.gather(tf.constant(self.files), order)
        labels = tf.gather(tf.constant(self.labels), order)
        dataset = tf.data.Dataset.from_tensor_slices((files, labels, positions))

        def decode(file, label, position):
            seed = tf.stack([tf.cast(self.seed, "int64") * 1_000_003 + epoch, position])
            views, valid = self._decode_views(file, seed)
            return views, label, valid

        dataset = dataset.map(
            decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        dataset = dataset.map(self._count).filter(lambda *element: element[-1])
        dataset = dataset.map(lambda views, label, valid: (views, label))
        return dataset.ignore_errors(log_warning=True)

    def _count(self, views, label, valid):
        added = self._skipped.assign_add(tf.cast(tf.logical_not(valid), "int64"))
        with tf.control_dependencies([added]):
            return views, label, tf.identity(valid)

    def _decode_views(self, file, seed):
        """tf: two uint8 views of one file, and whether it was readable."""
        contents = tf.io.read_file(file)
        head = [tf.strings.substr(contents, 0, len(s)) for s in _SIGNATURES]
        is_jpeg = tf.equal(head[0], _JPEG)
        known = tf.reduce_any([tf.equal(h, s) for h, s in zip(head, _SIGNATURES)])
        draws = tf.random.stateless_uniform(
            [len(self._crops), max(crop.num_draws for crop in self._crops)], seed=seed
        )
        empty = tf.zeros([self.image_size, self.image_size, 3], "uint8")

        def from_jpeg():
            shape = tf.image.extract_jpeg_shape(contents)
            return tuple(
                self._view(draws[i], shape[0], shape[1], crop, _jpeg_window(contents))
                for i, crop in enumerate(self._crops)
            )

        def from_other():
            image = tf.io.decode_image(contents, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            height, width = tf.shape(image)[0], tf.shape(image)[1]
            return tuple(
                self._view(draws[i], height, width, crop, _image_window(image))
                for i, crop in enumerate(self._crops)
            )

        views = tf.cond(
            known,
            lambda: tf.cond(is_jpeg, from_jpeg, from_other),
            lambda: (empty,) * len(self._crops),
        )
        return tuple(views), known

    def _view(self, draws, height, width, crop, decode_window):
        with ops_backend(crop, "tensorflow"):
            boxes, flip = crop.crop_windows(
                draws[None, : crop.num_draws], height, width
            )
        window = tf.cast(boxes[0], "int32")  # (top, left, height, width)
        image = decode_window(window)
        image = tf.image.resize(image, [self.image_size] * 2, antialias=True)
        if flip is not None:
            image = tf.cond(flip[0], lambda: tf.reverse(image, [1]), lambda: image)
        return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), "uint8")

    def _batch_views(self, views, labels):
        pair = {}
        for key, view, images in zip(VIEW_KEYS, self.views, views):
            images = to_unit_float(images)
            for layer in view.layers[1:]:
                images = layer(images, training=True)
            pair[key] = images
        return (pair, labels) if self.with_labels else pair


def _jpeg_window(contents):
    """tf: decodes the window `(top, left, height, width)` of JPEG bytes."""

    def decode(window):
        image = tf.io.decode_and_crop_jpeg(
            contents,
            window,
            channels=3,
            try_recover_truncated=True,
            acceptable_fraction=0.0,
        )
        image.set_shape([None, None, 3])
        return image

    return decode


def _image_window(image):
    """tf: crops the window `(top, left, height, width)` of a decoded image."""

    def decode(window):
        return image[
            window[0] : window[0] + window[2], window[1] : window[1] + window[3]
        ]

    return decode


def streaming_images(
    files,
    labels=None,
    image_size=224,
    batch_size=256,
    resize_size=None,
    interpolation="bilinear",
):
    """Batches of decoded images for evaluation, in file order, never all held.

    Each file is decoded whole and its largest centred square resized to
    `image_size` (antialiased), as `read_image_folder` does; with
    `resize_size`, the square is resized to `resize_size` and its centre
    `image_size` square kept, as the published test transform (resize 256,
    centre crop 224) does. Unreadable files are skipped with their labels, so
    images and labels stay paired.

    Args:
        files: list of image file paths. Required.
        labels: int labels `(len(files),)`, or `None` for `-1`s. Defaults to
            `None`.
        image_size: int. Defaults to `224`.
        batch_size: int. Defaults to `256`.
        resize_size: int `>= image_size`, or `None` to resize to
            `image_size` directly. Defaults to `None`.
        interpolation: `"bilinear"` or `"bicubic"` (both antialiased).
            Defaults to `"bilinear"`.

    Returns:
        A `tf.data.Dataset` of `(float32 images in [0, 1], int32 labels)`.

    Example:

    >>> import keras_imsvd
    >>> files, labels, _ = keras_imsvd.data.list_image_files("imagenet", "val")
    >>> ds = keras_imsvd.data.streaming_images(files, labels)  # doctest: +SKIP
    """
    check_positive_int("image_size", image_size)
    check_positive_int("batch_size", batch_size)
    if resize_size is not None and (
        check_positive_int("resize_size", resize_size) < image_size
    ):
        raise ValueError(
            "resize_size must be at least image_size. Received: "
            f"resize_size={resize_size}, image_size={image_size}"
        )
    if interpolation not in ("bilinear", "bicubic"):
        raise ValueError(
            "interpolation must be 'bilinear' or 'bicubic'. Received: "
            f"interpolation={interpolation!r}"
        )
    files = [os.fspath(f) for f in files]
    if labels is None:
        labels = np.full(len(files), -1, "int32")
    labels = np.asarray(labels, "int32")
    size = (image_size, image_size)
    scaled = (resize_size or image_size,) * 2
    offset = (scaled[0] - image_size) // 2

    def decode(file, label):
        contents = tf.io.read_file(file)
        head = [tf.strings.substr(contents, 0, len(s)) for s in _SIGNATURES]
        known = tf.reduce_any([tf.equal(h, s) for h, s in zip(head, _SIGNATURES)])

        def image():
            decoded = tf.cond(
                tf.equal(head[0], _JPEG),
                lambda: tf.io.decode_jpeg(
                    contents, 3, try_recover_truncated=True, acceptable_fraction=0.0
                ),
                lambda: tf.io.decode_image(contents, 3, expand_animations=False),
            )
            decoded.set_shape([None, None, 3])
            image = resize(decoded, scaled, method=interpolation)
            return image[offset : offset + image_size, offset : offset + image_size]

        empty = tf.zeros(size + (3,), "uint8")
        return tf.cond(known, image, lambda: empty), label, known

    dataset = tf.data.Dataset.from_tensor_slices((files, labels))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.filter(lambda image, label, known: known)
    dataset = dataset.map(lambda image, label, known: (image, label))
    dataset = dataset.ignore_errors(log_warning=True).batch(batch_size)
    dataset = dataset.map(lambda images, labels: (to_unit_float(images), labels))
    return dataset.prefetch(tf.data.AUTOTUNE)


class SkippedFilesLogger(keras.callbacks.Callback):
    """Logs, at the end of each epoch, the files `stream` skipped in it.

    A file counts when it is read; files read ahead for the next epoch count
    in the next line.

    Args:
        stream: a `StreamingViews`. Required.
        log: callable taking a message. Defaults to `print`.

    Example:

    >>> import keras_imsvd
    >>> stream = keras_imsvd.data.StreamingViews(["a.jpg"], batch_size=1)
    >>> callback = stream.callback()
    """

    def __init__(self, stream, log=print):
        super().__init__()
        self.stream = stream
        self.log = log
        self._reported = 0

    def on_epoch_end(self, epoch, logs=None):
        total = self.stream.skipped
        self.log(
            f"epoch {epoch + 1}: skipped {total - self._reported} unreadable "
            f"image file(s) ({total} in all)"
        )
        self._reported = total


def _crop_layer(view):
    layers = getattr(view, "layers", None)
    if not layers or not isinstance(layers[0], RandomResizedCrop):
        raise ValueError(
            "Each view must be a keras.layers.Pipeline that starts with a "
            "RandomResizedCrop (the crop is decoded from the file). Received: "
            f"views with {view!r}"
        )
    return layers[0]
