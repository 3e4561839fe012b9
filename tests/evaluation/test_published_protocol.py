"""The published linear evaluations: schedules, a frozen encoder, learning, and
bad arguments."""

import keras
import numpy as np
import pytest

from keras_imsvd.evaluation import PUBLISHED_PROTOCOLS
from keras_imsvd.evaluation import linear_evaluation
from keras_imsvd.evaluation import protocol_settings
from keras_imsvd.evaluation import published_learning_rate
from keras_imsvd.evaluation.published_protocol import _test_accuracy

# (protocol, epochs, {epoch: learning rate}), written out by hand: CIFAR-10
# steps x0.1 at 60 and 80 of 100 (3 and 4 of 5); ImageNet
# 0.02 * (1 + cos(pi * e / epochs)) / 2.
_SCHEDULES = [
    ("cifar10", None, {0: 30.0, 59: 30.0, 60: 3.0, 79: 3.0, 80: 0.3, 99: 0.3}),
    ("cifar10", 5, {0: 30.0, 2: 30.0, 3: 3.0, 4: 0.3}),
    ("cifar10", 1, {0: 30.0}),
    ("imagenet", None, {0: 0.02, 25: 0.017071067811865, 50: 0.01, 99: 4.9343963e-6}),
    ("imagenet", 4, {0: 0.02, 1: 0.017071067811865, 2: 0.01, 3: 0.002928932188135}),
]


@pytest.mark.parametrize("protocol, epochs, table", _SCHEDULES)
def test_learning_rate_at_epoch_boundaries(protocol, epochs, table):
    for epoch, rate in table.items():
        assert published_learning_rate(protocol, epoch, epochs) == pytest.approx(
            rate, rel=1e-9
        ), epoch


def test_settings_are_the_published_ones_and_scale_with_epochs():
    cifar = protocol_settings("cifar10")
    assert (cifar["epochs"], cifar["batch_size"], cifar["learning_rate"]) == (
        100,
        256,
        30.0,
    )
    assert (cifar["momentum"], cifar["weight_decay"]) == (0.9, 0.0)
    assert cifar["milestones"] == [60, 80] and cifar["test_resize"] == 36
    imagenet = protocol_settings("imagenet", batch_size=64)
    assert imagenet["test_resize"] == 256 and imagenet["image_size"] == 224
    assert imagenet["weight_decay"] == 1e-6 and imagenet["batch_size"] == 64
    assert protocol_settings("cifar10", epochs=10, image_size=16)["milestones"] == [
        6,
        8,
    ]
    assert protocol_settings("cifar10", image_size=16)["test_resize"] == 18
    with pytest.raises(TypeError):
        PUBLISHED_PROTOCOLS["cifar10"]["epochs"] = 1  # frozen


_COLOURS = np.array(
    [[r, g, b] for r in (0, 1) for g in (0, 1) for b in (0, 1)], "float32"
)


def _squares(per_class, seed, size=16):
    """A square of the class colour (a corner of the RGB cube) on dark noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(_COLOURS)), per_class)
    images = rng.uniform(0.0, 0.15, size=(len(labels), size, size, 3))
    for image, label in zip(images, labels):
        top, left = rng.integers(0, 4, size=2)
        image[top : top + 12, left : left + 12] = 0.1 + 0.8 * _COLOURS[label]
    return images.astype("float32"), labels


def _encoder(size=16):
    """Mean colour after a BatchNormalization with non-default statistics."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.BatchNormalization()(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    encoder = keras.Model(inputs, outputs)
    gamma, beta, _, _ = encoder.layers[1].get_weights()
    encoder.layers[1].set_weights(
        [gamma * 2.0, beta + 0.1, np.full(3, 0.3, "float32"), np.full(3, 0.1)]
    )
    return encoder


def test_classifier_learns_and_the_encoder_stays_frozen():
    encoder = _encoder()
    before = [w.copy() for w in encoder.get_weights()]
    result = linear_evaluation(
        encoder,
        _squares(24, seed=0),
        _squares(10, seed=1),
        protocol="cifar10",
        epochs=6,
        batch_size=32,
        image_size=16,
        evaluate_every_epoch=True,
    )
    # Weights and BatchNorm moving statistics are exactly as they were.
    after = encoder.get_weights()
    assert len(after) == len(before) == 4
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    assert encoder.trainable
    assert result["top1"] >= 0.95 and result["top5"] == 1.0
    assert result["train_top1"] >= 0.9
    # The short schedule: 30 for epochs 0-2, 3 at 3 (60%), 0.3 at 4 and 5 (80%).
    assert result["history"]["learning_rate"] == pytest.approx(
        [30.0, 30.0, 30.0, 3.0, 0.3, 0.3]
    )
    # The optimizer ran at the last epoch's rate.
    final_rate = keras.ops.convert_to_numpy(result["model"].optimizer.learning_rate)
    assert float(final_rate) == pytest.approx(0.3, rel=1e-6)
    assert len(result["test_history"]["top1"]) == 6
    assert result["best_top1"] == max(result["test_history"]["top1"])
    assert result["test_history"]["top1"][-1] == result["top1"]
    assert result["settings"]["milestones"] == [3, 4]


def test_a_callable_encoder_and_the_imagenet_protocol():
    # Uniform images, any crop of which is the same image: the classifier sees
    # the colours themselves.
    images = np.broadcast_to(
        (0.1 + 0.8 * _COLOURS)[:, None, None, :], (8, 12, 12, 3)
    ).astype("float32")
    labels = np.arange(8)
    train = (np.repeat(images, 8, axis=0), np.repeat(labels, 8))
    result = linear_evaluation(
        lambda x: np.asarray(x)[:, 0, 0, :],
        train,
        (images[:5], labels[:5]),  # 5 test images, padded to a batch of 16
        protocol="imagenet",
        epochs=3,
        batch_size=16,
        image_size=8,
    )
    assert result["settings"]["test_resize"] == 9
    assert result["history"]["learning_rate"] == pytest.approx(
        [0.02, 0.015, 0.005], rel=1e-9
    )
    logits = result["model"].predict(0.1 + 0.8 * _COLOURS[:5], verbose=0)
    assert result["top1"] == pytest.approx(np.mean(np.argmax(logits, 1) == labels[:5]))
    assert result["top5"] is not None


class _Logits:
    """A classifier whose logits are its inputs."""

    def predict_on_batch(self, features):
        return features


def test_top1_and_top5_are_counted_on_real_samples_only():
    import tensorflow as tf

    logits = np.zeros((4, 7), "float32")
    logits[0, 2] = 1.0  # label 2: top-1 right
    logits[1] = np.arange(7)  # label 0: ranked last, wrong at top-5
    logits[2] = np.arange(7)  # label 3: ranked 4th, right at top-5
    logits[3, 6] = 5.0  # padding, labelled -1
    labels = np.array([2, 0, 3, -1])
    batches = tf.data.Dataset.from_tensor_slices((logits, labels)).batch(2)
    top1, top5, total = _test_accuracy(_Logits(), np.asarray, batches, num_classes=7)
    assert top1 == pytest.approx(1 / 3) and top5 == pytest.approx(2 / 3)
    assert total == 3
    assert _test_accuracy(_Logits(), np.asarray, batches, num_classes=5)[1] is None


def test_bad_arguments_name_themselves():
    images, labels = _squares(1, seed=2)
    good = dict(
        encoder=lambda x: np.asarray(x).mean(axis=(1, 2)),
        train_data=(images, labels),
        test_data=(images, labels),
    )
    cases = [
        (dict(protocol="cifar"), ValueError, "protocol"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(batch_size=2.5), TypeError, "batch_size"),
        (dict(image_size=-1), ValueError, "image_size"),
        (dict(train_data=images), TypeError, "train_data"),
        (dict(test_data=(images[0], labels)), ValueError, "test_data"),
        (dict(train_data=(images, labels[:3])), ValueError, "train_data labels"),
        (dict(num_classes=2), ValueError, "num_classes"),
        (dict(evaluate_every_epoch="yes"), TypeError, "evaluate_every_epoch"),
        (dict(seed=0.5), TypeError, "seed"),
        (dict(verbose=3), ValueError, "verbose"),
        (dict(encoder=42), TypeError, "encoder"),
    ]
    for kwargs, error, name in cases:
        with pytest.raises(error, match=name):
            linear_evaluation(**{**good, **kwargs})
    with pytest.raises(ValueError, match=r"epoch must be in \[0, 5\)"):
        published_learning_rate("cifar10", 5, epochs=5)
    with pytest.raises(TypeError, match="epoch must be an integer"):
        published_learning_rate("imagenet", 1.0)
