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
