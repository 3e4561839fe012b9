"""Each bad argument is named exactly, with its value, in the error message.

A match on the bare name would also accept a message about another argument
whose name contains it (`k` in `batch_size`...): each case matches the whole
`Received: name=value` fragment.
"""

import re

import numpy as np
import pytest

from keras_imsvd.evaluation import KNNMonitor
from keras_imsvd.evaluation import extract_features
from keras_imsvd.evaluation import knn_classify
from keras_imsvd.evaluation import knn_predict
from keras_imsvd.evaluation import linear_probe

_RNG = np.random.default_rng(0)
_TRAIN = _RNG.normal(size=(6, 3)).astype("float32")
_LABELS = np.array([0, 1, 2, 0, 1, 2])


def _monitor(**kwargs):
    args = dict(train_data=(_TRAIN, _LABELS), validation_data=(_TRAIN, _LABELS))
    return KNNMonitor(**{**args, **kwargs})


def _knn(function, **kwargs):
    args = dict(train_features=_TRAIN, train_labels=_LABELS, test_features=_TRAIN)
    if function is knn_classify:
        args["test_labels"] = _LABELS
    return function(**{**args, **kwargs})


def _probe(**kwargs):
    args = dict(
        train_features=_TRAIN,
        train_labels=_LABELS,
        test_features=_TRAIN,
        test_labels=_LABELS,
    )
    return linear_probe(**{**args, **kwargs})


_CASES = [
    (_monitor, dict(every=0), ValueError, "Received: every=0"),
    (_monitor, dict(k=0), ValueError, "Received: k=0"),
    (_monitor, dict(temperature=-1.0), ValueError, "Received: temperature=-1.0"),
    (_monitor, dict(batch_size=2.5), TypeError, "Received: batch_size=2.5"),
    (_monitor, dict(name=""), TypeError, "name must be a non-empty string"),
    (
        lambda **kw: _knn(knn_classify, **kw),
        dict(test_features=np.ones(3)),
        ValueError,
        "Received: test_features.shape=(3,)",
    ),
    (
        lambda **kw: _knn(knn_classify, **kw),
        dict(test_labels=[0, 1]),
        ValueError,
        "Received: test_labels has 2, test_features has 6",
    ),
    (
        lambda **kw: _knn(knn_predict, **kw),
        dict(train_features=np.ones(6)),
        ValueError,
        "Received: train_features.shape=(6,)",
    ),
    (
        lambda **kw: _knn(knn_predict, **kw),
        dict(train_labels=np.ones((6, 2))),
        ValueError,
        "Received: train_labels.shape=(6, 2)",
    ),
    (lambda **kw: _knn(knn_predict, **kw), dict(k=0), ValueError, "Received: k=0"),
    (
        lambda **kw: _knn(knn_predict, **kw),
        dict(temperature=0),
        ValueError,
        "Received: temperature=0",
    ),
    (_probe, dict(epochs=0), ValueError, "Received: epochs=0"),
    (_probe, dict(batch_size=0), ValueError, "Received: batch_size=0"),
    (_probe, dict(learning_rate=-0.5), ValueError, "Received: learning_rate=-0.5"),
    (_probe, dict(num_classes=2), ValueError, "num_classes=2, largest label=2"),
    (
        lambda **kw: extract_features(lambda x: x, _TRAIN, **kw),
        dict(batch_size=0),
        ValueError,
        "Received: batch_size=0",
    ),
]


@pytest.mark.parametrize(
    "call, kwargs, error, fragment", _CASES, ids=[str(c[1]) for c in _CASES]
)
def test_message_names_the_argument_and_its_value(call, kwargs, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)):
        call(**kwargs)


class _RecordingModel:
    """A stand-in for a Keras model: `predict` doubles the images, logs calls."""

    def __init__(self):
        self.calls = []

    def predict(self, images, batch_size=None, verbose="auto"):
        self.calls.append((len(images), batch_size, verbose))
        return 2.0 * images.reshape(len(images), -1)


@pytest.mark.parametrize("verbose", [0, 1])
def test_predict_gets_full_batches_and_the_verbosity(verbose):
    images = np.arange(7 * 2 * 2, dtype="float32").reshape(7, 2, 2)
    model = _RecordingModel()
    features = extract_features(model, images, batch_size=3, verbose=verbose)
    np.testing.assert_array_equal(features, 2.0 * images.reshape(7, 4))
    # Six images in full batches with the caller's verbosity, then the last
    # image padded to a batch of 3, silently.
    assert model.calls == [(6, 3, verbose), (3, 3, 0)]
