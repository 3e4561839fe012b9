"""Batched feature extraction into NumPy arrays."""

import keras
import numpy as np

from keras_imsvd.evaluation import _checks


def _as_2d(features, name):
    features = np.asarray(features)
    if features.ndim == 1:
        raise ValueError(
            f"{name} returned one value per image; features must be (N, F). "
            f"Received shape {features.shape}"
        )
    # Spatial feature maps (N, H, W, C) become vectors (N, H * W * C).
    features = features.reshape(features.shape[0], -1)
    # Mixed-precision models give float16 or bfloat16 features.
    return features if features.dtype == np.float64 else features.astype(np.float32)


def _model_features(method, name, images, batch_size, verbose):
    """`method(images)` with every batch full, so that no shape is new to it.

    A last batch smaller than `batch_size` would be traced again (TensorFlow)
    and could not be split over the devices of a data-parallel mesh (JAX): it
    is padded with copies of the last image, and their features dropped.
    """
    if not isinstance(images, np.ndarray):
        out = method(images, batch_size=batch_size, verbose=verbose)
        return _as_2d(keras.ops.convert_to_numpy(out), name)
    full = len(images) - len(images) % batch_size
    parts = []
    if full:
        parts.append(method(images[:full], batch_size=batch_size, verbose=verbose))
    rest = images[full:]
    if len(rest):
        padding = np.repeat(rest[-1:], batch_size - len(rest), axis=0)
        padded = np.concatenate([rest, padding])
        parts.append(method(padded, batch_size=batch_size, verbose=0)[: len(rest)])
    return np.concatenate(
        [_as_2d(keras.ops.convert_to_numpy(part), name) for part in parts]
    )


def extract_features(encoder_or_fn, images, batch_size=256, verbose=0):
    """Computes features of `images` batch by batch and returns them in NumPy.

    What is called depends on `encoder_or_fn`:

    - an object with an `embed(images, batch_size, verbose)` method, such as
      `keras_imsvd.IMSVDModel`: that method (backbone features);
    - an object with a `predict` method, such as any `keras.Model`:
      `predict(images, batch_size=batch_size, verbose=verbose)`;
    - any other callable: called on slices of `batch_size` images, its outputs
      (tensors of any backend, or arrays) converted to NumPy and concatenated.

    Outputs with more than two axes (feature maps) are flattened to `(N, F)`.

    Args:
        encoder_or_fn: A model or a callable from a batch of images to features.
        images: Images, an array `(N, ...)`. For models this may also be
            anything their `predict`/`embed` accepts, e.g. a `tf.data.Dataset`.
        batch_size: Images per inference batch. Defaults to `256`.
        verbose: `0` for silence, `1` for a progress bar. Defaults to `0`.

    Returns:
        A NumPy array `(N, F)`.

    Example:

    ```python
    features = keras_imsvd.evaluation.extract_features(model, x_test)
    raw_pixels = keras_imsvd.evaluation.extract_features(lambda x: x, x_test)
    ```
    """
    _checks.check_positive_int("batch_size", batch_size)
    for method in ("embed", "predict"):
        if hasattr(encoder_or_fn, method):
            return _model_features(
                getattr(encoder_or_fn, method), method, images, batch_size, verbose
            )
    if not callable(encoder_or_fn):
        raise TypeError(
            "encoder_or_fn must be a model or a callable. "
            f"Received: encoder_or_fn={encoder_or_fn!r}"
        )
    if not hasattr(images, "__len__") or not hasattr(images, "__getitem__"):
        raise TypeError(
            "With a plain callable, images must be an array (N, ...). "
            f"Received: type(images)={type(images).__name__}"
        )
    num_images = len(images)
    if num_images == 0:
        raise ValueError("images must hold at least one image. Received: 0")
    progress = keras.utils.Progbar(num_images) if verbose else None
    outputs = []
    for start in range(0, num_images, batch_size):
        batch = images[start : start + batch_size]
        outputs.append(_as_2d(keras.ops.convert_to_numpy(encoder_or_fn(batch)), "fn"))
        if progress is not None:
            progress.update(min(start + batch_size, num_images))
    return np.concatenate(outputs, axis=0)


def extract_features_to_file(
    encoder_or_fn,
    dataset,
    num_images,
    path=None,
    dtype="float32",
    max_memory_bytes=1 << 30,
    verbose=0,
):
    """Features of a stream of `(images, labels)` batches, written batch by batch.

    The features are never held twice: each batch's features go straight
    into their rows of the output, an in-memory array when it takes at most
    `max_memory_bytes`, else an `np.memmap`, at `path` or in a temporary file
    that is removed when the array is released. A bank of ImageNet features
    (1.28 million x 2048 float16, 5 GB) is then read from disk by `knn_predict`
    and `linear_probe`, block by block.

    Args:
        encoder_or_fn: a model (its `embed` or `predict` is used, as in
            `extract_features`) or a callable from an image batch to features.
        dataset: an iterable of `(images, labels)` batches, such as
            `keras_imsvd.data.streaming_images(files, labels)`.
        num_images: int, an upper bound on the number of images (the file
            count; unreadable files are skipped by the stream).
        path: str, `Path` or `None`; the memmap's file. It is created (or
            overwritten). Defaults to `None`.
        dtype: `"float32"` or `"float16"`, the stored dtype. Defaults to
            `"float32"`.
        max_memory_bytes: int, the largest output kept in memory; `0` always
            writes a memmap. Defaults to `1 << 30`.
        verbose: `0` for silence, `1` for a progress bar. Defaults to `0`.

    Returns:
        `(features, labels)`: `(n, F)` features (an array or a memmap) and int
        `(n,)` labels of the `n` images the stream delivered, in its order.

    Example:

    ```python
    files, labels, _ = keras_imsvd.data.list_image_files("imagenet", "val")
    stream = keras_imsvd.data.streaming_images(files, labels)
    features, labels = keras_imsvd.evaluation.extract_features_to_file(
        encoder, stream, len(files), path="run/val_features.npy"
    )
    ```
    """
    _checks.check_positive_int("num_images", num_images)
    if dtype not in ("float32", "float16"):
        raise ValueError(
            f"dtype must be 'float32' or 'float16'. Received: dtype={dtype!r}"
        )
    method = next(
        (
            getattr(encoder_or_fn, m)
            for m in ("embed", "predict")
            if hasattr(encoder_or_fn, m)
        ),
        None,
    )
    if method is None and not callable(encoder_or_fn):
        raise TypeError(
            "encoder_or_fn must be a model or a callable. "
            f"Received: encoder_or_fn={encoder_or_fn!r}"
        )
    progress = keras.utils.Progbar(num_images) if verbose else None
    features, labels, count = None, np.empty(num_images, np.int64), 0
    batch_size = None
    for images, batch_labels in dataset:
        images = keras.ops.convert_to_numpy(images)
        if method is not None:
            # A short last batch is padded to the first one's size: no new shape.
            batch_size = batch_size or max(len(images), 1)
            out = _model_features(method, "encoder", images, batch_size, 0)
        else:
            out = _as_2d(keras.ops.convert_to_numpy(encoder_or_fn(images)), "fn")
        if count + len(out) > num_images:
            raise ValueError(
                "The stream holds more images than num_images. "
                f"Received: num_images={num_images}"
            )
        if features is None:
            features = _output(
                (num_images, out.shape[1]), dtype, path, max_memory_bytes
            )
        features[count : count + len(out)] = out
        labels[count : count + len(out)] = keras.ops.convert_to_numpy(batch_labels)
        count += len(out)
        if progress is not None:
            progress.update(count)
    if features is None:
        raise ValueError("The stream delivered no images.")
    if isinstance(features, np.memmap):
        features.flush()
    return features[:count], labels[:count]


def _output(shape, dtype, path, max_memory_bytes):
    """An array of `shape`: in memory when small enough, else a memmap."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if path is None and size <= max_memory_bytes:
        return np.empty(shape, dtype)
    if path is None:
        import tempfile

        # Unlinked at once: the space is freed when the memmap is released.
        return np.memmap(tempfile.TemporaryFile(), dtype, "w+", shape=shape)
    return np.memmap(path, dtype, "w+", shape=shape)
