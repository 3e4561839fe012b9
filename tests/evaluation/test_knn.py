"""Weighted kNN: hand-computed votes, chunking, a brute-force float64 reference."""

import math

import numpy as np
import pytest

from keras_imsvd.evaluation import knn_classify
from keras_imsvd.evaluation import knn_predict


def _unit(angle_degrees):
    radians = np.deg2rad(angle_degrees)
    return np.array([np.cos(radians), np.sin(radians)])


def _brute_force(train, train_labels, test, k, temperature, num_classes):
    """The textbook weighted kNN in float64, with the full similarity matrix."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    similarities = test @ train.T
    predictions = []
    for row in similarities:
        nearest = np.argsort(-row, kind="stable")[:k]
        scores = np.zeros(num_classes)
        for j in nearest:
            scores[train_labels[j]] += math.exp(row[j] / temperature)
        predictions.append(int(np.argmax(scores)))
    return np.array(predictions)


@pytest.fixture
def triangle():
    # Query at 0 degrees. One class-0 neighbour at 0 degrees (similarity 1),
    # two class-1 neighbours at +-60 degrees (similarity 0.5), and a class-0
    # point at 180 degrees (similarity -1), never among the 3 nearest.
    # Lengths differ on purpose: only directions count.
    train = np.stack([3 * _unit(0), _unit(60), 0.5 * _unit(-60), 2 * _unit(180)])
    labels = np.array([0, 1, 1, 0])
    query = _unit(0)[None]
    return train, labels, query


def test_weighting_overturns_the_majority(triangle):
    train, labels, query = triangle
    # The vote is exp(1/T) for class 0 against 2 exp(0.5/T) for class 1: equal
    # at T* = 0.5 / ln 2. Below T* the single closest neighbour wins, above it
    # the majority does.
    t_star = 0.5 / math.log(2)
    assert knn_predict(train, labels, query, k=3, temperature=0.07)[0] == 0
    assert knn_predict(train, labels, query, k=3, temperature=0.99 * t_star)[0] == 0
    assert knn_predict(train, labels, query, k=3, temperature=1.01 * t_star)[0] == 1
    assert knn_predict(train, labels, query, k=3, temperature=10.0)[0] == 1
    # k = 1: only the closest point; k = 2: one vote each, the closer one wins.
    assert knn_predict(train, labels, query, k=1, temperature=10.0)[0] == 0
    assert knn_predict(train, labels, query, k=2, temperature=10.0)[0] == 0


def test_far_neighbour_adds_its_exact_weight(triangle):
    train, labels, query = triangle
    # With k = 4 the point at 180 degrees joins class 0 with weight exp(-1/T),
    # so class 0 wins while exp(1/T) + exp(-1/T) > 2 exp(0.5/T): a threshold
    # above the k = 3 one, found here by bisection.
    t_star = 0.5 / math.log(2)
    t_four = _bisect(
        lambda t: math.exp(1 / t) + math.exp(-1 / t) - 2 * math.exp(0.5 / t)
    )
    assert t_four > t_star
    assert knn_predict(train, labels, query, k=4, temperature=0.99 * t_four)[0] == 0
    assert knn_predict(train, labels, query, k=4, temperature=1.01 * t_four)[0] == 1
    # Between the two thresholds k = 3 and k = 4 disagree.
    middle = 0.5 * (t_star + t_four)
    assert knn_predict(train, labels, query, k=3, temperature=middle)[0] == 1
    assert knn_predict(train, labels, query, k=4, temperature=middle)[0] == 0


def _bisect(f, low=0.3, high=5.0):
    assert f(low) > 0 > f(high)
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if f(mid) > 0 else (low, mid)
    return 0.5 * (low + high)


def test_accuracy_and_predictions(triangle):
    train, labels, _ = triangle
    test = np.stack([_unit(5), _unit(70), _unit(175)])
    accuracy, predictions = knn_classify(
        train, labels, test, [0, 1, 1], k=1, return_predictions=True
    )
    np.testing.assert_array_equal(predictions, [0, 1, 0])
    assert accuracy == pytest.approx(2 / 3)
    assert knn_classify(train, labels, test, [0, 1, 0], k=1) == 1.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_brute_force(dtype):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 16)).astype(dtype)
    labels = rng.integers(0, 7, size=300)
    test = rng.normal(size=(120, 16)).astype(dtype)
    for k, temperature in [(1, 0.07), (20, 0.07), (20, 0.5), (50, 0.1)]:
        want = _brute_force(
            train.astype("float64"), labels, test.astype("float64"), k, temperature, 7
        )
        got = knn_predict(train, labels, test, k=k, temperature=temperature)
        mismatches = np.sum(got != want)
        # float32 may flip a near-tie; float64 must agree exactly.
        assert mismatches == 0 if dtype == "float64" else mismatches <= 2


def test_chunked_equals_unchunked():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(257, 8))
    labels = rng.integers(0, 5, size=257)
    test = rng.normal(size=(101, 8))
    whole = knn_predict(
        train, labels, test, k=20, batch_size=1000, train_batch_size=1000
    )
    for batch_size, train_batch_size in [(7, 13), (1, 20), (50, 256), (101, 1)]:
        chunked = knn_predict(
            train,
            labels,
            test,
            k=20,
            batch_size=batch_size,
            train_batch_size=train_batch_size,
        )
        np.testing.assert_array_equal(chunked, whole)


def test_small_temperature_does_not_overflow():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(50, 4))
    labels = rng.integers(0, 3, size=50)
    test = rng.normal(size=(20, 4))
    # exp(1 / 1e-3) overflows any float; the vote must still be that of the
    # nearest neighbour, the limit T -> 0.
    got = knn_predict(train, labels, test, k=10, temperature=1e-3)
    np.testing.assert_array_equal(got, knn_predict(train, labels, test, k=1))


def test_k_larger_than_train_is_clipped():
    train = np.eye(3)
    labels = np.array([0, 1, 1])
    with pytest.warns(UserWarning, match="k=10"):
        predictions = knn_predict(train, labels, np.eye(3), k=10, temperature=10.0)
    # All three vote: class 1 has two nearly equal weights, class 0 one.
    np.testing.assert_array_equal(predictions, [1, 1, 1])


def test_labels_forms_and_num_classes():
    train = np.eye(3)
    test = np.eye(3)
    column = np.array([[0], [1], [2]])
    floats = np.array([0.0, 1.0, 2.0])
    for labels in [column, floats, [0, 1, 2]]:
        assert knn_classify(train, labels, test, labels, k=1) == 1.0
    assert knn_classify(train, [0, 1, 2], test, [0, 1, 2], k=1, num_classes=10) == 1.0


_BAD_ARGUMENTS = [
    (dict(k=0), ValueError, "k"),
    (dict(k=2.5), TypeError, "k"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(temperature=-1), ValueError, "temperature"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(num_classes=2), ValueError, "num_classes"),
    (dict(train_features=np.ones((4,))), ValueError, "train_features"),
    (dict(test_features=np.ones((2, 5))), ValueError, "features"),
    (dict(train_labels=[0, 1, 2]), ValueError, "train_labels"),
    (dict(train_labels=[0, 1, 2, -1]), ValueError, "train_labels"),
    (dict(train_labels=[0.5, 1, 2, 0]), TypeError, "train_labels"),
    (dict(train_labels=["a", "b", "c", "d"]), TypeError, "train_labels"),
    (dict(test_labels=[0]), ValueError, "test_labels"),
    (dict(train_features=np.full((4, 3), np.nan)), ValueError, "train_features"),
]


def test_bad_arguments():
    # One test, not one per case: each test pays a keras clear_session.
    for kwargs, error, message in _BAD_ARGUMENTS:
        args = dict(
            train_features=np.ones((4, 3)),
            train_labels=[0, 1, 2, 0],
            test_features=np.ones((2, 3)),
            test_labels=[0, 1],
        )
        args.update(kwargs)
        with pytest.raises(error, match=message):
            knn_classify(**args)
