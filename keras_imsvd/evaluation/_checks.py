"""Input checks shared by the evaluation functions."""

import numbers

import numpy as np

from keras_imsvd._validation import check_positive_int


def check_features(name, features):
    """Returns `features` as a finite 2-D floating NumPy array."""
    array = np.asarray(features)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (num_samples, num_features). "
            f"Received: {name}.shape={array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample. Received: 0")
    if not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
        or array.dtype == bool
    ):
        raise TypeError(f"{name} must be numeric. Received: {name}.dtype={array.dtype}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype("float32")
    if not _all_finite(array):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return array


def _all_finite(array, rows=65536):
    """`np.all(np.isfinite(array))`, read in chunks of rows (for memmaps)."""
    return all(
        np.isfinite(array[start : start + rows]).all()
        for start in range(0, array.shape[0], rows)
    )


def check_feature_pair(train_features, test_features):
    """Checks both feature arrays, which must have the same number of features."""
    train_features = check_features("train_features", train_features)
    test_features = check_features("test_features", test_features)
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            "train_features and test_features must have the same number of "
            f"features. Received: {train_features.shape[1]} and "
            f"{test_features.shape[1]}"
        )
    return train_features, test_features


def check_labels(name, labels, num_samples, features_name):
    """Returns `labels` as a 1-D int64 array of non-negative class ids."""
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of integer class ids. "
            f"Received: {name}.shape={np.asarray(labels).shape}"
        )
    if array.shape[0] != num_samples:
        raise ValueError(
            f"{name} and {features_name} must have the same number of samples. "
            f"Received: {name} has {array.shape[0]}, {features_name} has "
            f"{num_samples}"
        )
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise TypeError(
                f"{name} must hold integer class ids. Received non-integer values "
                f"of dtype {array.dtype}"
            )
    elif not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{name} must hold integer class ids. Received: dtype={array.dtype}"
        )
    array = array.astype("int64")
    if array.size and array.min() < 0:
        raise ValueError(
            f"{name} must be >= 0. Received: min({name})={int(array.min())}"
        )
    return array


def check_num_classes(num_classes, *label_arrays):
    """Returns the number of classes, inferred from labels when `None`."""
    largest = max(int(labels.max()) for labels in label_arrays if labels.size)
    if num_classes is None:
        return largest + 1
    check_positive_int("num_classes", num_classes)
    if num_classes <= largest:
        raise ValueError(
            "num_classes must exceed the largest label. "
            f"Received: num_classes={num_classes}, largest label={largest}"
        )
    return int(num_classes)


def check_positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0. Received: {name}={value}")
