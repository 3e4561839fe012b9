"""Linear probe: separable data is learned, random labels are not."""

import numpy as np
import pytest

from keras_imsvd.evaluation import linear_probe


def _blobs(num_per_class, num_classes, num_features, seed, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    centres = 8.0 * np.eye(num_classes, num_features)
    labels = np.repeat(np.arange(num_classes), num_per_class)
    features = centres[labels] + rng.normal(size=(len(labels), num_features))
    return (scale * features + shift).astype("float32"), labels


def test_separable_data_is_learned():
    x, y = _blobs(100, 4, 32, seed=0)
    x_test, y_test = _blobs(50, 4, 32, seed=1)
    result = linear_probe(x, y, x_test, y_test, epochs=20, batch_size=64)
    assert result["accuracy"] >= 0.98
    assert result["train_accuracy"] >= 0.98
    history = result["history"]
    assert len(history["loss"]) * result["passes_per_history_entry"] == 20
    assert history["loss"][-1] < history["loss"][0]
    # The returned probe takes raw features and gives the reported accuracy.
    logits = result["model"].predict(x_test, verbose=0)
    assert logits.shape == (200, 4)
    assert np.mean(np.argmax(logits, 1) == y_test) == pytest.approx(result["accuracy"])


def test_few_labels_and_arbitrary_scale():
    # 10 labels per class, features of a huge scale and offset: the
    # standardisation makes the default learning rate fit.
    x, y = _blobs(10, 5, 64, seed=2, scale=1e4, shift=-3e5)
    x_test, y_test = _blobs(40, 5, 64, seed=3, scale=1e4, shift=-3e5)
    result = linear_probe(x, y, x_test, y_test, epochs=50)
    assert result["accuracy"] >= 0.95
    result = linear_probe(x, y, x_test, y_test, epochs=50, normalize="per_feature")
    assert result["accuracy"] >= 0.6


def test_random_labels_are_near_chance():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 16)).astype("float32")
    y = rng.integers(0, 5, size=400)
    x_test = rng.normal(size=(2000, 16)).astype("float32")
    y_test = rng.integers(0, 5, size=2000)
    result = linear_probe(x, y, x_test, y_test, epochs=20, batch_size=128)
    # Chance is 0.2; the standard deviation over 2000 samples is about 0.009.
    assert 0.15 <= result["accuracy"] <= 0.25


def test_without_normalization_and_num_classes():
    x, y = _blobs(20, 3, 8, seed=5)
    result = linear_probe(
        x, y, x, y, epochs=30, normalize=False, num_classes=6, learning_rate=0.05
    )
    assert result["model"].output_shape == (None, 6)
    assert result["accuracy"] >= 0.95


_BAD_ARGUMENTS = [
    (dict(epochs=0), ValueError, "epochs"),
    (dict(batch_size=1.5), TypeError, "batch_size"),
    (dict(learning_rate=0.0), ValueError, "learning_rate"),
    (dict(num_classes=1), ValueError, "num_classes"),
    (dict(test_features=np.ones((3, 5))), ValueError, "features"),
    (dict(test_labels=[0, 1]), ValueError, "test_labels"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(normalize="yes"), ValueError, "normalize"),
]


def test_bad_arguments():
    # One test, not one per case: each test pays a keras clear_session.
    for kwargs, error, message in _BAD_ARGUMENTS:
        args = dict(
            train_features=np.ones((4, 3)),
            train_labels=[0, 1, 0, 1],
            test_features=np.ones((3, 3)),
            test_labels=[0, 1, 1],
        )
        args.update(kwargs)
        with pytest.raises(error, match=message):
            linear_probe(**args)
