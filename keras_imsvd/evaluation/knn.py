"""Weighted k-nearest-neighbour classification on frozen features."""

import warnings

import numpy as np

from keras_imsvd.evaluation import _checks


def _l2_normalize(features, dtype):
    features = features.astype(dtype, copy=False)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    # A zero vector stays zero: its cosine similarity to everything is 0.
    return features / np.maximum(norms, np.finfo(dtype).tiny)


def _top_k(similarities, k):
    """Column indices of the k largest entries of each row, in no order."""
    width = similarities.shape[1]
    if k >= width:
        return np.broadcast_to(np.arange(width), similarities.shape).copy()
    return np.argpartition(similarities, width - k, axis=1)[:, width - k :]


def _neighbours(queries, train, k, train_batch_size):
    """Similarities and indices of the k nearest training samples of each query.

    `train` is read one block at a time and normalised block by block, so a
    memory-mapped bank never needs to fit in memory.
    """
    best_similarities = np.empty((queries.shape[0], 0), queries.dtype)
    best_indices = np.empty((queries.shape[0], 0), np.int64)
    for start in range(0, train.shape[0], train_batch_size):
        block = _l2_normalize(train[start : start + train_batch_size], queries.dtype)
        similarities = queries @ block.T  # (B, T)
        columns = _top_k(similarities, k)  # (B, min(k, T))
        block_similarities = np.take_along_axis(similarities, columns, axis=1)
        # Merge the running k best with this block's k best.
        best_similarities = np.concatenate([best_similarities, block_similarities], 1)
        best_indices = np.concatenate([best_indices, columns + start], 1)
        if best_similarities.shape[1] > k:
            keep = _top_k(best_similarities, k)
            best_similarities = np.take_along_axis(best_similarities, keep, 1)
            best_indices = np.take_along_axis(best_indices, keep, 1)
    return best_similarities, best_indices


def knn_predict(
    train_features,
    train_labels,
    test_features,
    k=20,
    temperature=0.07,
    num_classes=None,
    batch_size=256,
    train_batch_size=16384,
):
    """Predicts classes by a similarity-weighted vote of the k nearest neighbours.

    The weighted kNN of InstDisc, DINO and the published IMSVD code: features
    are L2-normalised, neighbours are the `k` training samples of highest
    cosine similarity `s`, each votes for its class with weight
    `exp(s / temperature)`, and the class with the largest sum of weights
    wins. Ties between equally similar neighbours at the k-th place are broken
    arbitrarily, ties between class scores by the lowest class id.

    The work is NumPy on the CPU: features to evaluate are NumPy arrays whatever
    the backend, a chunked float32 matmul is fast there and the result is the
    same on every backend. Test samples are processed `batch_size` at a time
    against blocks of `train_batch_size` training samples, keeping the `k` best
    of each block, and each chunk and block is normalised as it is read: peak
    memory is about `batch_size * train_batch_size * 12` bytes (float32
    similarities and int64 partition indices), 50 MB with the defaults, plus
    one normalised block, whatever the size of the sets. The features may be
    `np.memmap`s (see `extract_features_to_file`): a bank larger than memory
    is read block by block.

    Args:
        train_features: Features of the labelled samples, `(N, F)`.
        train_labels: Integer class ids of the labelled samples, `(N,)`.
        test_features: Features of the samples to classify, `(M, F)`.
        k: Number of neighbours, `>= 1`. Values above `N` are clipped to `N`,
            with a warning. Defaults to `20`.
        temperature: Temperature `T > 0` of the vote weights `exp(s / T)`.
            Defaults to `0.07`.
        num_classes: Number of classes; `None` infers `max(train_labels) + 1`.
            Defaults to `None`.
        batch_size: Test samples per chunk. Defaults to `256`.
        train_batch_size: Training samples per block. Defaults to `16384`.

    Returns:
        The predicted class ids, an int64 NumPy array `(M,)`.

    Example:

    ```python
    predictions = keras_imsvd.evaluation.knn_predict(
        train_features, train_labels, test_features, k=20, temperature=0.07
    )
    ```

    References:
        - Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric
          Instance Discrimination", 2018. https://arxiv.org/abs/1805.01978
        - Caron et al., "Emerging Properties in Self-Supervised Vision
          Transformers", 2021. https://arxiv.org/abs/2104.14294
    """
    train_features, test_features = _checks.check_feature_pair(
        train_features, test_features
    )
    train_labels = _checks.check_labels(
        "train_labels", train_labels, train_features.shape[0], "train_features"
    )
    num_classes = _checks.check_num_classes(num_classes, train_labels)
    _checks.check_positive_int("k", k)
    _checks.check_positive_number("temperature", temperature)
    _checks.check_positive_int("batch_size", batch_size)
    _checks.check_positive_int("train_batch_size", train_batch_size)
    num_train = train_features.shape[0]
    if k > num_train:
        warnings.warn(
            f"k={k} exceeds the number of training samples; using k={num_train}.",
            stacklevel=2,
        )
        k = num_train

    dtype = np.result_type(train_features.dtype, test_features.dtype, np.float32)
    predictions = np.empty(test_features.shape[0], np.int64)
    for start in range(0, test_features.shape[0], batch_size):
        queries = _l2_normalize(test_features[start : start + batch_size], dtype)
        similarities, indices = _neighbours(
            queries, train_features, k, train_batch_size
        )
        # Subtracting each row's best similarity scales all of the row's
        # weights by one constant: the argmax is unchanged and exp cannot
        # overflow, even for small temperatures.
        shifted = similarities - similarities.max(axis=1, keepdims=True)
        weights = np.exp(shifted / temperature)  # (B, k)
        rows = np.arange(queries.shape[0])[:, None]
        flat = (rows * num_classes + train_labels[indices]).ravel()
        scores = np.bincount(
            flat, weights=weights.ravel(), minlength=queries.shape[0] * num_classes
        ).reshape(queries.shape[0], num_classes)
        predictions[start : start + queries.shape[0]] = np.argmax(scores, axis=1)
    return predictions


def knn_classify(
    train_features,
    train_labels,
    test_features,
    test_labels,
    k=20,
    temperature=0.07,
    num_classes=None,
    batch_size=256,
    train_batch_size=16384,
    return_predictions=False,
):
    """Top-1 accuracy of the weighted kNN classifier of `knn_predict`.

    The protocol of the published IMSVD evaluation (k = 20, T = 0.07, cosine
    similarity on L2-normalised features); see `knn_predict` for the vote and
    the memory used.

    Args:
        train_features: Features of the labelled samples, `(N, F)`.
        train_labels: Integer class ids of the labelled samples, `(N,)`.
        test_features: Features of the samples to classify, `(M, F)`.
        test_labels: Integer class ids of the samples to classify, `(M,)`.
        k: Number of neighbours, `>= 1`; clipped to `N`. Defaults to `20`.
        temperature: Temperature of the vote weights. Defaults to `0.07`.
        num_classes: Number of classes; `None` infers `max(train_labels) + 1`.
            Defaults to `None`.
        batch_size: Test samples per chunk. Defaults to `256`.
        train_batch_size: Training samples per block. Defaults to `16384`.
        return_predictions: Whether to return the predictions too. Defaults to
            `False`.

    Returns:
        The accuracy, a float in `[0, 1]`; with `return_predictions=True`, the
        tuple `(accuracy, predictions)`.

    Example:

    ```python
    accuracy = keras_imsvd.evaluation.knn_classify(
        model.embed(x_train), y_train, model.embed(x_test), y_test
    )
    ```

    References:
        - Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric
          Instance Discrimination", 2018. https://arxiv.org/abs/1805.01978
        - Niu, Xia, Shan, Wang, "Information-Maximized Soft Variable
          Discretization for Self-Supervised Image Representation Learning",
          2025. https://arxiv.org/abs/2501.03469
    """
    test_features = _checks.check_features("test_features", test_features)
    test_labels = _checks.check_labels(
        "test_labels", test_labels, test_features.shape[0], "test_features"
    )
    predictions = knn_predict(
        train_features,
        train_labels,
        test_features,
        k=k,
        temperature=temperature,
        num_classes=num_classes,
        batch_size=batch_size,
        train_batch_size=train_batch_size,
    )
    accuracy = float(np.mean(predictions == test_labels))
    if return_predictions:
        return accuracy, predictions
    return accuracy
