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
from keras_imsvd.data.records import TFRecordImages

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
    """Two-view batches of encoded images, read, cropped and decoded every epoch.

    The images come from a list of image files, or from TFRecord files
    (`TFRecordImages`, `tfds_records`). Per epoch `e`:

    - files: shuffled by a permutation drawn from `(seed, e)` alone (so a
      resumed epoch sees the same order); shard `shard_index` of `num_shards`
      takes every `num_shards`-th file of it;
    - TFRecords: the record files are shuffled by `(seed, e)`, shard
      `shard_index` takes every `num_shards`-th record file (every
      `num_shards`-th record when there are fewer files than shards), reads
      them interleaved, and shuffles the records in a buffer of
      `shuffle_buffer` seeded by `seed` (so the order depends on `(seed, e)`
      alone).

    Each image is decoded into two views (or one, with one view pipeline):

    - the crop window of each view is drawn as the view's `RandomResizedCrop`
      draws it (torchvision's 10 tries, then the centred fallback), from the
      image's full size and uniforms seeded by `(seed, e, position)`;
    - JPEGs decode only the smallest box that holds the windows of all views,
      once (`tf.io.decode_and_crop_jpeg`); PNG, GIF and BMP decode whole. Each
      view's window is cropped from it, resized to `image_size` (bilinear,
      antialiased), flipped with the crop layer's draw, and rounded to uint8;
    - batches of `batch_size` (within an epoch) go through the other layers of
      each view, and come out as float32 in [0, 1].

    Every epoch of every shard has `steps_per_epoch` batches, so processes
    that train together take the same number of steps. Unreadable images are
    skipped and counted (`skipped`, the `callback` logs them per epoch): bytes
    that are not JPEG, PNG, GIF or BMP, and files that fail to read or decode
    (the failure is also logged by tf.data). The images an epoch misses are
    made up from the start of the same epoch's order, with new crops; an
    epoch runs short only if more than half of a shard is unreadable.
    Truncated JPEGs decode with their missing rows gray; CMYK, grayscale and
    RGBA files decode to RGB.

    Args:
        files: list of image file paths, or a `TFRecordImages`. Required.
        labels: int labels `(len(files),)`, or `None` (`-1`s, or the labels of
            the records). Defaults to `None`.
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
        shuffle_buffer: int, records in the shuffle buffer of a TFRecord
            source (about 110 kB each for ImageNet). Defaults to `2048`.

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
        shuffle_buffer: int = 2048,
    ):
        self.source = _source(files, labels)
        self.image_size = check_positive_int("image_size", image_size)
        self.batch_size = check_positive_int("batch_size", batch_size)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int. Received: seed={seed!r}")
        self.seed = seed
        self.shuffle = shuffle
        self.shuffle_buffer = check_positive_int("shuffle_buffer", shuffle_buffer)
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
    def files(self):
        """The image files, or the TFRecord files of a `TFRecordImages`."""
        return self.source.files

    @property
    def labels(self):
        """The labels of the image files (`None` for TFRecords)."""
        return getattr(self.source, "labels", None)

    @property
    def files_per_epoch(self):
        """Images this shard reads per epoch (for TFRecords, on average)."""
        if isinstance(self.source, _Files):
            count = len(self.source)
            return len(range(self.shard_index, count, self.num_shards))
        return len(self.source) // self.num_shards

    @property
    def steps_per_epoch(self):
        """Batches per epoch, the same on every shard: full batches of an
        even share of the images (the rest of an epoch's images are not
        read)."""
        return len(self.source) // self.num_shards // self.batch_size

    @property
    def skipped(self):
        """Images skipped so far as unreadable, over all epochs read (an
        epoch read twice, by two iterators, counts once)."""
        return sum(self.skipped_by_epoch().values())

    def skipped_by_epoch(self):
        """`{epoch: images skipped as unreadable}` of the epochs read so far
        (those that skipped some)."""
        if self._skipped is None:
            return {}
        epochs, counts = self._skipped.export()
        return {
            int(epoch): int(count)
            for epoch, count in zip(epochs.numpy(), counts.numpy())
            if count
        }

    def order(self, epoch):
        """Indices into `files` that this shard reads in `epoch`, in order
        (for TFRecords, of the record files)."""
        return self.source.order(self, tf.constant(epoch, "int64")).numpy()

    def images(self, epoch=0):
        """The per-image `(view_1, view_2, label)` uint8 stream of one epoch
        (`(view_1, label)` for one view), before the batch layers (jitter,
        grayscale, blur, solarize): every readable image of the shard's
        epoch, once."""
        self._counter()
        return self._pass(tf.constant(epoch, "int64"), tf.constant(0, "int64")).map(
            lambda views, label: (*views, label)
        )

    def dataset(self, initial_epoch: int = 0, epochs: int | None = None):
        """Batches from `initial_epoch` on: `epochs` epochs, or endless.

        Pass `steps_per_epoch` to `fit` with the endless stream: each epoch
        then reads its own order, and a run resumed at epoch `e` reads the
        same images in the same order as it first did.

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
            lambda epoch: self._epoch_images(epoch).batch(
                self.batch_size, drop_remainder=True
            )
        )
        dataset = dataset.map(self._batch_views, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def callback(self, log=print):
        """A Keras callback that logs the images skipped in each epoch."""
        return SkippedFilesLogger(self, log)

    def _counter(self):
        if self._skipped is None:
            with tf.init_scope():
                self._skipped = tf.lookup.experimental.MutableHashTable(
                    tf.int64, tf.int64, default_value=0
                )

    def _epoch_images(self, epoch):
        """tf: exactly `steps_per_epoch * batch_size` images of `epoch` (while
        at most half are unreadable): the first pass over the shard's epoch,
        then as much of a second as the skipped images left missing."""
        passes = tf.data.Dataset.range(2).flat_map(
            lambda index: self._pass(epoch, index)
        )
        return passes.take(self.steps_per_epoch * self.batch_size)

    def _pass(self, epoch, index):
        """tf: `(views, label)` of the readable images of one pass over the
        shard's epoch; pass 0 counts the unreadable ones.

        A last element marks the end of the pass. Each element carries its
        place in the pass; after unreadable images are filtered out and
        failed decodes dropped (`ignore_errors`), the gaps between the
        places that remain are the images skipped.
        """
        elements = self.source.epoch(self, epoch)
        end = tf.data.Dataset.from_tensors(
            (self.source.empty, tf.constant(-1, "int32"), tf.constant(True))
        )
        elements = elements.map(lambda handle, label: (handle, label, False))
        elements = elements.concatenate(end).enumerate()
        first_seed = tf.cast(self.seed, "int64") * 1_000_003 + epoch

        def decode(place, element):
            handle, label, is_end = element
            seed = tf.stack([first_seed, index * (1 << 32) + place])
            views, valid = tf.cond(
                is_end,
                lambda: (self._empty_views(), tf.constant(False)),
                lambda: self._decode_views(self.source.read(handle), seed),
            )
            return views, label, tf.logical_or(valid, is_end), is_end, place

        elements = elements.map(
            decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        elements = elements.filter(lambda views, label, keep, is_end, place: keep)
        elements = elements.ignore_errors(log_warning=True)
        counted = tf.cast(tf.equal(index, 0), "int64")

        def count(state, element):
            # The epoch's count is the most that one reading of it has met.
            last, gaps = state
            views, label, _, is_end, place = element
            gaps = gaps + (place - last - 1) * counted
            known = self._skipped.lookup(epoch)
            stored = self._skipped.insert(epoch, tf.maximum(known, gaps))
            with tf.control_dependencies([stored]):
                return (tf.identity(place), gaps), (views, label, is_end)

        start = (tf.constant(-1, "int64"), tf.constant(0, "int64"))
        elements = elements.scan(start, count)
        elements = elements.filter(lambda views, label, is_end: tf.logical_not(is_end))
        return elements.map(lambda views, label, is_end: (views, label))

    def _empty_views(self):
        empty = tf.zeros([self.image_size, self.image_size, 3], "uint8")
        return (empty,) * len(self._crops)

    def _decode_views(self, contents, seed):
        """tf: the uint8 views of encoded image bytes, and whether they were
        of a known format."""
        is_jpeg, known = _format(contents)
        draws = tf.random.stateless_uniform(
            [len(self._crops), max(crop.num_draws for crop in self._crops)], seed=seed
        )

        def views_of(height, width, decode_window):
            # One decode per image, of the smallest box holding every window.
            windows, flips = zip(
                *(
                    self._window(draws[i], height, width, crop)
                    for i, crop in enumerate(self._crops)
                )
            )
            stacked = tf.stack(windows)
            start = tf.reduce_min(stacked[:, :2], axis=0)
            end = tf.reduce_max(stacked[:, :2] + stacked[:, 2:], axis=0)
            image = decode_window(tf.concat([start, end - start], 0))
            return tuple(
                self._finish(
                    image[
                        window[0] - start[0] : window[0] - start[0] + window[2],
                        window[1] - start[1] : window[1] - start[1] + window[3],
                    ],
                    flip,
                )
                for window, flip in zip(windows, flips)
            )

        def from_jpeg():
            shape = tf.image.extract_jpeg_shape(contents)
            return views_of(shape[0], shape[1], _jpeg_window(contents))

        def from_other():
            image = tf.io.decode_image(contents, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            height, width = tf.shape(image)[0], tf.shape(image)[1]
            return views_of(height, width, _image_window(image))

        views = tf.cond(
            known,
            lambda: tf.cond(is_jpeg, from_jpeg, from_other),
            self._empty_views,
        )
        return tuple(views), known

    def _window(self, draws, height, width, crop):
        """tf: the int32 window `(top, left, height, width)` and flip of one
        view, drawn as `crop` draws them."""
        with ops_backend(crop, "tensorflow"):
            boxes, flip = crop.crop_windows(
                draws[None, : crop.num_draws], height, width
            )
        return tf.cast(boxes[0], "int32"), None if flip is None else flip[0]

    def _finish(self, image, flip):
        """tf: a crop resized to `image_size` (bilinear, antialiased where it
        shrinks: upscaled, both resizes agree), flipped, rounded to uint8."""
        size = [self.image_size] * 2
        shape = tf.shape(image)
        image = tf.cond(
            tf.reduce_all(shape[:2] <= self.image_size),
            lambda: tf.image.resize(image, size),
            lambda: tf.image.resize(image, size, antialias=True),
        )
        if flip is not None:
            image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), "uint8")

    def _batch_views(self, views, labels):
        pair = {}
        for key, view, images in zip(VIEW_KEYS, self.views, views):
            images = to_unit_float(images)
            for layer in view.layers[1:]:
                images = layer(images, training=True)
            pair[key] = images
        return (pair, labels) if self.with_labels else pair


class _Files:
    """Image files and their labels: the handle of an image is its path."""

    empty = ""

    def __init__(self, files, labels):
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

    def __len__(self):
        return len(self.files)

    def order(self, stream, epoch):
        return _shuffled(len(self.files), stream, epoch)[
            stream.shard_index :: stream.num_shards
        ]

    def epoch(self, stream, epoch):
        order = self.order(stream, epoch)
        return tf.data.Dataset.from_tensor_slices(
            (
                tf.gather(tf.constant(self.files), order),
                tf.gather(tf.constant(self.labels), order),
            )
        )

    def in_order(self):
        return tf.data.Dataset.from_tensor_slices((self.files, self.labels))

    def read(self, handle):
        return tf.io.read_file(handle)


class _Records:
    """A `TFRecordImages`: the handle of an image is its bytes."""

    empty = b""

    def __init__(self, records):
        self.records = records
        self.files = records.files

    def __len__(self):
        return len(self.records)

    def order(self, stream, epoch):
        return _shuffled(len(self.files), stream, epoch)

    def epoch(self, stream, epoch):
        files = tf.gather(tf.constant(self.files), self.order(stream, epoch))
        if self.records.limit is not None:
            # The first records of the files in their order, dealt out.
            serialized = self.records.serialized().shard(
                stream.num_shards, stream.shard_index
            )
        elif len(self.files) >= stream.num_shards:
            serialized = self.records.records(
                files[stream.shard_index :: stream.num_shards], parallel=True
            )
        else:
            serialized = self.records.records(files, parallel=True).shard(
                stream.num_shards, stream.shard_index
            )
        elements = serialized.map(
            self.records.parse, num_parallel_calls=tf.data.AUTOTUNE
        )
        if stream.shuffle:
            # A fixed seed: each epoch's buffer draws the same way, from the
            # files in the epoch's own order.
            elements = elements.shuffle(stream.shuffle_buffer, seed=stream.seed)
        return elements

    def in_order(self):
        return self.records.serialized(parallel=True).map(
            self.records.parse, num_parallel_calls=tf.data.AUTOTUNE
        )

    def read(self, handle):
        return handle


def _source(files, labels):
    if isinstance(files, TFRecordImages):
        if labels is not None:
            raise ValueError(
                "labels must be None for TFRecordImages: the labels are read "
                f"from the records. Received: labels of length {len(labels)}"
            )
        return _Records(files)
    if isinstance(files, (str, os.PathLike)):
        raise TypeError(
            "files must be a list of image files or a TFRecordImages. Received: "
            f"files={os.fspath(files)!r} (list a folder with list_image_files)"
        )
    return _Files(files, labels)


def _shuffled(count, stream, epoch):
    """tf: `range(count)`, permuted by `(stream.seed, epoch)` when the stream
    shuffles."""
    if not stream.shuffle:
        return tf.range(count)
    noise = tf.random.stateless_uniform(
        [count], seed=tf.stack([tf.cast(stream.seed, "int64"), epoch])
    )
    return tf.argsort(noise, stable=True)


def _format(contents):
    """tf: whether encoded bytes are a JPEG, and whether they are of a known
    format (JPEG, PNG, GIF or BMP), from their first bytes."""
    head = [tf.strings.substr(contents, 0, len(s)) for s in _SIGNATURES]
    known = tf.reduce_any([tf.equal(h, s) for h, s in zip(head, _SIGNATURES)])
    return tf.equal(head[0], _JPEG), known


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
    """Batches of decoded images for evaluation, in stored order, never all held.

    Each file is decoded whole and its largest centred square resized to
    `image_size` (antialiased), as `read_image_folder` does; with
    `resize_size`, the square is resized to `resize_size` and its centre
    `image_size` square kept, as the published test transform (resize 256,
    centre crop 224) does. Unreadable files are skipped with their labels, so
    images and labels stay paired.

    Args:
        files: list of image file paths, or a `TFRecordImages`. Required.
        labels: int labels `(len(files),)`, or `None` (`-1`s, or the labels
            of the records). Defaults to `None`.
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
    source = _source(files, labels)
    size = (image_size, image_size)
    scaled = (resize_size or image_size,) * 2
    offset = (scaled[0] - image_size) // 2

    def decode(handle, label):
        contents = source.read(handle)
        is_jpeg, known = _format(contents)

        def image():
            decoded = tf.cond(
                is_jpeg,
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

    dataset = source.in_order().map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.filter(lambda image, label, known: known)
    dataset = dataset.map(lambda image, label, known: (image, label))
    dataset = dataset.ignore_errors(log_warning=True).batch(batch_size)
    dataset = dataset.map(lambda images, labels: (to_unit_float(images), labels))
    return dataset.prefetch(tf.data.AUTOTUNE)


class SkippedFilesLogger(keras.callbacks.Callback):
    """Logs, at the end of each epoch that skipped some, the unreadable
    images `stream` skipped in it.

    Each epoch's count is kept apart (`StreamingViews.skipped_by_epoch`), so
    images read ahead for the next epoch count in the next line, and an epoch
    read again by a second iterator counts once.

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

    def on_epoch_end(self, epoch, logs=None):
        counts = self.stream.skipped_by_epoch()
        if counts.get(epoch):
            total = sum(n for e, n in counts.items() if e <= epoch)
            self.log(
                f"epoch {epoch + 1}: skipped {counts[epoch]} unreadable "
                f"image(s) ({total} in all)"
            )


def _crop_layer(view):
    layers = getattr(view, "layers", None)
    if not layers or not isinstance(layers[0], RandomResizedCrop):
        raise ValueError(
            "Each view must be a keras.layers.Pipeline that starts with a "
            "RandomResizedCrop (the crop is decoded from the file). Received: "
            f"views with {view!r}"
        )
    return layers[0]
