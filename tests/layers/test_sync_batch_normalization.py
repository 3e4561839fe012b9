"""`SyncBatchNormalization` on one replica, in process, on every backend.

Across replicas (TensorFlow's 4 logical CPUs, 2 PyTorch processes, 4 JAX
devices) it is checked against one device on the global batch by
`tests/distribute/test_sync_batch_normalization.py`.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_imsvd
from keras_imsvd.layers import SyncBatchNormalization
from keras_imsvd.layers import sync_batch_normalization
from tests import _grad

SHAPE = (6, 3, 2, 5)  # (N, H, W, C)
ARGS = {"momentum": 0.7, "epsilon": 1e-5}


def _inputs(rng, shape=SHAPE):
    # A mean far from 0 per channel: E[x^2] - E[x]^2 loses digits if wrong.
    return (rng.normal(size=shape) * 2.0 + np.arange(shape[-1])).astype("float32")


def _pair(rng, synchronized, shape=SHAPE):
    """Keras' layer and ours, built, with the same random gamma and beta."""
    layers = [
        keras.layers.BatchNormalization(**ARGS),
        SyncBatchNormalization(synchronized=synchronized, **ARGS),
    ]
    channels = shape[-1]
    gamma = rng.normal(size=channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    for layer in layers:
        layer.build(shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return layers


def _moving(layer):
    return [ops.convert_to_numpy(v) for v in (layer.moving_mean, layer.moving_variance)]


def _float64_batch_norm(x, gamma, beta, mask=None):
    """Training-mode BatchNorm in float64: outputs, mean, biased variance."""
    x = x.astype("float64")
    axes = tuple(range(x.ndim - 1))
    weights = np.ones(x.shape[:-1]) if mask is None else mask.astype("float64")
    weights = np.broadcast_to(weights[..., None], x.shape)
    count = weights.sum(axes)
    mean = (weights * x).sum(axes) / count
    variance = (weights * (x - mean) ** 2).sum(axes) / count
    outputs = gamma * (x - mean) / np.sqrt(variance + ARGS["epsilon"]) + beta
    return outputs, mean, variance


@pytest.mark.parametrize("synchronized", [True, False])
def test_one_replica_is_keras_batch_normalization(rng, synchronized):
    keras_layer, layer = _pair(rng, synchronized)
    for _ in range(2):
        x = _inputs(rng)
        expected = ops.convert_to_numpy(keras_layer(x, training=True))
        actual = ops.convert_to_numpy(layer(x, training=True))
        # The same ops on one replica: equal to the last bit.
        np.testing.assert_array_equal(actual, expected)
        for ours, theirs in zip(_moving(layer), _moving(keras_layer)):
            np.testing.assert_array_equal(ours, theirs)
    x = _inputs(rng)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(layer(x, training=False)),
        ops.convert_to_numpy(keras_layer(x, training=False)),
    )


def _as_replicas(monkeypatch):
    """Makes the layer take its all-reduce path, with one replica's sums."""
    module = sync_batch_normalization.collectives
    monkeypatch.setattr(module, "num_replicas", lambda: 2)
    monkeypatch.setattr(module, "all_reduce_sum", lambda x: x)


@pytest.mark.parametrize("shape", [SHAPE, (7, 4)])
def test_sums_path_matches_float64(rng, monkeypatch, shape):
    _as_replicas(monkeypatch)
    _, layer = _pair(rng, True, shape)
    x = _inputs(rng, shape)
    outputs = ops.convert_to_numpy(layer(x, training=True))
    gamma, beta = (ops.convert_to_numpy(v) for v in (layer.gamma, layer.beta))
    expected, mean, variance = _float64_batch_norm(x, gamma, beta)
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=2e-5)
    moving_mean, moving_variance = _moving(layer)
    momentum = ARGS["momentum"]
    np.testing.assert_allclose(moving_mean, (1 - momentum) * mean, atol=1e-5)
    np.testing.assert_allclose(
        moving_variance, momentum + (1 - momentum) * variance, rtol=1e-5
    )


def test_sums_path_gradients_match_keras(rng, monkeypatch):
    keras_layer, layer = _pair(rng, True)
    x = _inputs(rng)
    weights = rng.normal(size=SHAPE).astype("float32")

    def loss(bn):
        def value(inputs):
            return ops.sum(ops.multiply(bn(inputs, training=True), weights))

        return value

    expected = _grad.value_and_grad(loss(keras_layer), x)
    _as_replicas(monkeypatch)
    actual = _grad.value_and_grad(loss(layer), x)
    assert abs(actual[0] - expected[0]) < 1e-4
    scale = np.max(np.abs(expected[1][0]))
    np.testing.assert_allclose(actual[1][0], expected[1][0], rtol=0, atol=1e-5 * scale)


def test_mask_leaves_entries_out(rng):
    shape = (5, 4, 3)  # (N, T, C), masked over (N, T)
    _, layer = _pair(rng, True, shape)
    x = _inputs(rng, shape)
    mask = rng.random(shape[:-1]) > 0.4
    outputs = ops.convert_to_numpy(layer(x, training=True, mask=mask))
    gamma, beta = (ops.convert_to_numpy(v) for v in (layer.gamma, layer.beta))
    expected, mean, _ = _float64_batch_norm(x, gamma, beta, mask)
    np.testing.assert_allclose(outputs, expected, rtol=0, atol=2e-5)
    np.testing.assert_allclose(
        _moving(layer)[0], (1 - ARGS["momentum"]) * mean, atol=1e-5
    )


def test_config_and_keras_file_round_trip(rng, tmp_path):
    layer = SyncBatchNormalization(synchronized=False, **ARGS)
    config = layer.get_config()
    assert config["synchronized"] is False
    assert SyncBatchNormalization.from_config(config).get_config() == config
    assert SyncBatchNormalization().get_config()["synchronized"] is True
    inputs = keras.Input((4,))
    model = keras.Model(inputs, SyncBatchNormalization(**ARGS)(inputs))
    model.layers[-1].moving_mean.assign(rng.normal(size=4).astype("float32"))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[-1]) is SyncBatchNormalization
    assert loaded.layers[-1].synchronized is True
    x = _inputs(rng, (3, 4))
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded(x)), ops.convert_to_numpy(model(x))
    )


def test_bad_arguments():
    with pytest.raises(TypeError, match="synchronized='yes'"):
        SyncBatchNormalization(synchronized="yes")
    with pytest.raises(ValueError, match="renorm=True"):
        SyncBatchNormalization(renorm=True)
    assert SyncBatchNormalization(synchronized=False, renorm=True).renorm


def test_backbones_and_projector_synchronise_by_default():
    def flags(model):
        return {
            layer.synchronized
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        }

    small = keras_imsvd.backbones.small_convnet(widths=(4, 8))
    assert flags(small) == {True}
    assert all(
        type(layer) is SyncBatchNormalization
        for layer in small.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )
    off = keras_imsvd.backbones.small_convnet(
        widths=(4,), batch_norm_synchronized=False
    )
    assert flags(off) == {False}
    projector = keras_imsvd.models.build_projector("8-4", batch_norm_synchronized=False)
    assert flags(projector) == {False}
    assert flags(keras_imsvd.models.build_projector("8-4")) == {True}
    with pytest.raises(TypeError, match="batch_norm_synchronized=1"):
        keras_imsvd.backbones.small_convnet(batch_norm_synchronized=1)
