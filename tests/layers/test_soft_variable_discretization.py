import keras
import numpy as np
import pytest
from keras import ops

import keras_imsvd
from keras_imsvd.layers import SoftVariableDiscretization
from tests import reference


@pytest.mark.parametrize("b, k, temperature", [(2, 1, 1.0), (3, 5, 0.1), (32, 4, 5.0)])
def test_matches_float64_softmax_with_clamp(rng, b, k, temperature):
    z = rng.normal(scale=4.0, size=(9, k * b)).astype("float32")
    layer = SoftVariableDiscretization(bin_size=b, temperature=temperature)
    out = ops.convert_to_numpy(layer(z))
    assert out.shape == (9, k, b)
    expected = reference.soft_codes(z, b, temperature)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_matches_float64_reference_where_the_clamp_acts(temperature):
    # Integer logits, up to 1000 in size: `z / temperature` and `z - max(z)` are
    # exact in float32 for these temperatures, so the only rounding is in the
    # softmax itself. Each probability is either above 4 epsilon or below
    # epsilon / 4 (the clamp then gives epsilon itself), never close to it.
    gaps = np.array([0, -2, -5, -10, -14, -25, -40, -90], dtype="float32")
    order = np.random.default_rng(3).permuted(np.tile(gaps, (6, 1)), axis=1)
    offsets = np.array([1000, 0, -300, 50, -1000, 7], dtype="float32")
    z = (order + offsets[:, None]).reshape(2, 3 * 8)  # (N, K b) = (2, 24)
    out = ops.convert_to_numpy(SoftVariableDiscretization(8, temperature)(z))
    expected = reference.soft_codes(z, 8, temperature)
    assert np.sum(expected == 1e-8) >= 12  # the clamp acts on these inputs
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=0)


def test_clamp_is_not_renormalised():
    # A very confident variable: all but one bin fall under epsilon.
    z = np.array([[100.0, 0.0, 0.0, 0.0]], dtype="float32")
    out = ops.convert_to_numpy(SoftVariableDiscretization(bin_size=4)(z))
    np.testing.assert_allclose(out[0, 0, 1:], 1e-8, rtol=1e-6)
    np.testing.assert_allclose(out.sum(-1), 1.0 + 3e-8, rtol=1e-6)


def test_rows_sum_to_one_up_to_clamp(rng):
    z = rng.normal(size=(20, 60)).astype("float32")
    out = ops.convert_to_numpy(SoftVariableDiscretization(bin_size=6)(z))
    assert np.all(np.abs(out.sum(-1) - 1.0) <= 6 * 1e-8 + 1e-6)


def test_temperature_sharpens(rng):
    z = rng.normal(size=(50, 32)).astype("float32")
    sharp = ops.convert_to_numpy(SoftVariableDiscretization(8, temperature=0.1)(z))
    soft = ops.convert_to_numpy(SoftVariableDiscretization(8, temperature=10.0)(z))
    assert sharp.max(-1).mean() > 0.8 > 0.2 > soft.max(-1).mean()


def test_float32_under_mixed_precision(rng):
    keras.config.set_dtype_policy("mixed_float16")
    layer = SoftVariableDiscretization(bin_size=4)
    z = ops.cast(rng.normal(scale=1e4, size=(4, 8)), "float16")
    out = layer(z)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert float(ops.min(out)) >= 1e-8 * (1 - 1e-6)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"bin_size": 1}, ValueError, "bin_size=1"),
        ({"bin_size": 2.5}, TypeError, "bin_size=2.5"),
        ({"bin_size": 4, "temperature": 0.0}, ValueError, "temperature=0.0"),
        ({"bin_size": 4, "temperature": -1}, ValueError, "temperature=-1"),
        ({"bin_size": 4, "epsilon": -1e-3}, ValueError, "epsilon=-0.001"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        SoftVariableDiscretization(**kwargs)


def test_embedding_size_must_be_divisible():
    layer = SoftVariableDiscretization(bin_size=5)
    with pytest.raises(ValueError, match="embedding_size=12, bin_size=5"):
        layer(np.zeros((2, 12), "float32"))


def test_config_and_keras_round_trip(tmp_path, rng):
    layer = SoftVariableDiscretization(bin_size=4, temperature=0.5, epsilon=1e-6)
    config = layer.get_config()
    assert (config["bin_size"], config["temperature"], config["epsilon"]) == (
        4,
        0.5,
        1e-6,
    )
    clone = SoftVariableDiscretization.from_config(config)
    z = rng.normal(size=(3, 12)).astype("float32")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(layer(z)), ops.convert_to_numpy(clone(z))
    )
    inputs = keras.Input((12,))
    model = keras.Model(
        inputs, keras_imsvd.layers.SoftVariableDiscretization(4)(inputs)
    )
    path = tmp_path / "layer.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        model.predict(z, verbose=0), loaded.predict(z, verbose=0)
    )
