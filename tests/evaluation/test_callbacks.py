"""KNNMonitor inside a real `fit`."""

import csv
import math

import keras
import numpy as np
import pytest

from keras_imsvd.evaluation import KNNMonitor
from keras_imsvd.evaluation import extract_features
from keras_imsvd.evaluation import knn_classify


def _data(seed, num=120, num_features=6, num_classes=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=num)
    centres = 3.0 * np.eye(num_classes, num_features)
    images = centres[labels] + rng.normal(size=(num, num_features))
    return images.astype("float32"), labels


def _model():
    inputs = keras.Input((6,))
    features = keras.layers.Dense(8, activation="relu", name="features")(inputs)
    outputs = keras.layers.Dense(3, name="logits")(features)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def test_logs_at_the_right_epochs(tmp_path):
    train, validation = _data(0), _data(1, num=60)
    model = _model()
    monitor = KNNMonitor(train, validation, every=3, k=5)
    csv_path = tmp_path / "log.csv"
    history = model.fit(
        *train,
        epochs=7,
        batch_size=32,
        verbose=0,
        callbacks=[monitor, keras.callbacks.CSVLogger(str(csv_path))],
    )
    # First epoch, every third (2, 5) and the last (6).
    assert [epoch for epoch, _ in monitor.history] == [0, 2, 5, 6]
    logged = history.history["val_knn_accuracy"]
    assert len(logged) == 7
    for epoch, value in enumerate(logged):
        if epoch in (0, 2, 5, 6):
            assert 0.0 <= value <= 1.0
            assert value == dict(monitor.history)[epoch]
        else:
            assert math.isnan(value)
    # The last value is the kNN accuracy of the final model's outputs.
    want = knn_classify(
        model.predict(train[0], verbose=0),
        train[1],
        model.predict(validation[0], verbose=0),
        validation[1],
        k=5,
    )
    assert logged[-1] == pytest.approx(want)
    # This is easy data: the outputs separate the classes.
    assert logged[-1] > 0.8
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7
    assert float(rows[6]["val_knn_accuracy"]) == pytest.approx(logged[-1])
    assert rows[1]["val_knn_accuracy"] == "nan"


def test_feature_fn_and_embed():
    train, validation = _data(2), _data(3, num=30)
    model = _model()
    encoder = keras.Model(model.input, model.get_layer("features").output)
    calls = []

    def feature_fn(images):
        calls.append(len(images))
        return encoder(images)

    monitor = KNNMonitor(
        train, validation, every=2, k=3, feature_fn=feature_fn, batch_size=50
    )
    history = model.fit(*train, epochs=2, verbose=0, callbacks=[monitor])
    # Epochs 0 and 1, each on 120 train and 30 validation images in batches.
    assert calls == [50, 50, 20, 30] * 2
    want = knn_classify(
        extract_features(encoder, train[0]),
        train[1],
        extract_features(encoder, validation[0]),
        validation[1],
        k=3,
    )
    assert history.history["val_knn_accuracy"][-1] == pytest.approx(want)

    class WithEmbed(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder = keras.layers.Dense(4)
            self.head = keras.layers.Dense(3)
            self.embedded = 0

        def call(self, x):
            return self.head(self.encoder(x))

        def embed(self, images, batch_size=256, verbose=0):
            self.embedded += 1
            return keras.ops.convert_to_numpy(self.encoder(images))

    model = WithEmbed()
    model.compile(
        optimizer="sgd",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    monitor = KNNMonitor(train, validation, every=10, name="knn")
    history = model.fit(*train, epochs=1, verbose=0, callbacks=[monitor])
    assert model.embedded == 2
    assert 0.0 <= history.history["knn"][0] <= 1.0


def test_evaluate_standalone():
    train, validation = _data(4), _data(5, num=40)
    monitor = KNNMonitor(train, validation, feature_fn=lambda x: x, k=5)
    want = knn_classify(train[0], train[1], validation[0], validation[1], k=5)
    assert monitor.evaluate() == pytest.approx(want)


_BAD_ARGUMENTS = [
    (dict(every=0), ValueError, "every"),
    (dict(k=0), ValueError, "k"),
    (dict(temperature=0.0), ValueError, "temperature"),
    (dict(feature_fn=3), TypeError, "feature_fn"),
    (dict(train_data=np.ones((3, 2))), TypeError, "train_data"),
    (dict(validation_data=(np.ones((3, 2)), [0, 1])), ValueError, "validation"),
]


def test_bad_arguments():
    # One test, not one per case: each test pays a keras clear_session.
    for kwargs, error, message in _BAD_ARGUMENTS:
        args = dict(train_data=_data(0), validation_data=_data(1, num=10))
        args.update(kwargs)
        with pytest.raises(error, match=message):
            KNNMonitor(**args)
