"""Loss values under mixed precision against float32 and float64 references.

Tolerances come from the unit roundoff u of the compute dtype: bfloat16 keeps 8
significant bits (u = 2^-8 = 3.9e-3, about 2.4 decimal digits) and float16 11
bits (u = 2^-11 = 4.9e-4). Both policies run on CPU under every backend.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_imsvd
from keras_imsvd.losses import joint_cross_entropy
from tests import reference

UNIT_ROUNDOFF = {"mixed_bfloat16": 2.0**-8, "mixed_float16": 2.0**-11}
POLICIES = sorted(UNIT_ROUNDOFF)

# Once the codes leave the low-precision layers, the library computes in
# float32: from the same rounded inputs it must agree with float64 to float32
# accuracy, as in tests/losses (a bfloat16 softmax or loss would be off by ~u).
FLOAT32_RTOL = 1e-5


@pytest.fixture
def policy(request):
    """Sets the global dtype policy for one test and restores the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.config.set_dtype_policy(previous)


def _compute_dtype():
    return keras.config.dtype_policy().compute_dtype


def _to_float64(x):
    return ops.convert_to_numpy(ops.cast(x, "float32")).astype("float64")


def _value(x):
    return float(ops.convert_to_numpy(x))


def _logits(rng, n, size, scale):
    z1 = rng.normal(scale=scale, size=(n, size))
    z2 = z1 + rng.normal(scale=scale / 2, size=(n, size))
    return z1.astype("float32"), z2.astype("float32")


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_codes_and_loss_of_rounded_logits_are_float32_accurate(rng, policy):
    # Logits as a mixed-precision projector emits them. Temperature 0.5 divides
    # exactly; spread logits put many probabilities on the 1e-8 clamp, which
    # underflows to 0 in float16 and would send the invariance term far off.
    z1, z2 = _logits(rng, 16, 4 * 8, scale=5.0)
    low1, low2 = (ops.cast(z, _compute_dtype()) for z in (z1, z2))
    layer = keras_imsvd.layers.SoftVariableDiscretization(bin_size=8, temperature=0.5)
    p1, p2 = layer(low1), layer(low2)
    assert keras.backend.standardize_dtype(p1.dtype) == "float32"
    expected1 = reference.soft_codes(_to_float64(low1), 8, temperature=0.5)
    expected2 = reference.soft_codes(_to_float64(low2), 8, temperature=0.5)
    assert np.mean(expected1 == 1e-8) > 0.2  # the clamp is exercised
    np.testing.assert_allclose(ops.convert_to_numpy(p1), expected1, rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(ops.convert_to_numpy(p2), expected2, rtol=FLOAT32_RTOL)
    total, terms = joint_cross_entropy(p1, p2)
    expected_terms = reference.loss_terms(expected1, expected2)
    for name, value in expected_terms.items():
        np.testing.assert_allclose(
            _value(terms[name]), value, rtol=FLOAT32_RTOL, atol=1e-7
        )
    np.testing.assert_allclose(
        _value(total), sum(expected_terms.values()), rtol=FLOAT32_RTOL
    )


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_loss_of_low_precision_codes_is_computed_in_float32(rng, policy):
    # Moderate codes, so that none rounds to 0 in float16.
    z1, z2 = _logits(rng, 24, 3 * 6, scale=1.0)
    codes = [reference.soft_codes(z, 6).astype("float32") for z in (z1, z2)]
    low1, low2 = (ops.cast(p, _compute_dtype()) for p in codes)
    total, _ = joint_cross_entropy(low1, low2)
    assert keras.backend.standardize_dtype(total.dtype) == "float32"
    expected = reference.loss(_to_float64(low1), _to_float64(low2))
    np.testing.assert_allclose(_value(total), expected, rtol=FLOAT32_RTOL)


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_loss_of_mixed_precision_projection_is_within_rounding(rng, policy):
    # A Dense layer in the compute dtype rounds its inputs, weights and outputs:
    # each logit is off by a few u of its size. The loss, an average over the
    # N K codes of smooth functions of the logits, moves by well under 4 u of
    # its value (measured: under u / 5); a term lost or computed wrongly
    # under the policy moves it by far more.
    x1, x2 = _logits(rng, 32, 16, scale=1.0)
    kernel = rng.normal(scale=0.5, size=(16, 64)).astype("float32")
    dense = keras.layers.Dense(64, use_bias=False)
    dense.build((None, 16))
    dense.set_weights([kernel])
    layer = keras_imsvd.layers.SoftVariableDiscretization(bin_size=16, temperature=0.2)
    h1, h2 = dense(x1), dense(x2)
    assert keras.backend.standardize_dtype(h1.dtype) == _compute_dtype()
    total, _ = joint_cross_entropy(layer(h1), layer(h2))
    expected = reference.loss(
        reference.soft_codes(x1.astype("float64") @ kernel, 16, temperature=0.2),
        reference.soft_codes(x2.astype("float64") @ kernel, 16, temperature=0.2),
    )
    np.testing.assert_allclose(_value(total), expected, rtol=4 * UNIT_ROUNDOFF[policy])


def _model():
    encoder = keras.Sequential(
        [keras.layers.Flatten(), keras.layers.Dense(16, activation="relu")]
    )
    model = keras_imsvd.IMSVDModel(
        encoder, projector="32-32", bin_size=8, temperature=0.2
    )
    model.build((None, 8, 8, 1))
    return model


def _one_step(model, views):
    """The logged loss of one SGD step and the change of every trainable weight."""
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [ops.convert_to_numpy(w) for w in model.trainable_weights]
    history = model.fit(views, batch_size=32, epochs=1, shuffle=False, verbose=0)
    after = [ops.convert_to_numpy(w) for w in model.trainable_weights]
    step = np.concatenate([(a - b).ravel() for a, b in zip(after, before)])
    return history.history["loss"][0], step


@pytest.fixture(scope="module")
def float32_step():
    """Views, initial weights, loss and step of the model in float32."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    views = {
        key: x + rng.normal(scale=0.05, size=x.shape).astype("float32")
        for key in ("view_1", "view_2")
    }
    model = _model()
    weights = model.get_weights()
    loss, step = _one_step(model, views)
    return views, weights, loss, step


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
def test_training_step_matches_float32(float32_step, policy):
    views, weights, expected_loss, expected_step = float32_step
    model = _model()
    model.set_weights(weights)
    loss, step = _one_step(model, views)
    u = UNIT_ROUNDOFF[policy]
    # The logged loss is the unscaled float32 loss of the same weights (under
    # mixed_float16 the optimizer scales it by 2^15 internally).
    np.testing.assert_allclose(loss, expected_loss, rtol=4 * u)
    # Gradients pass back through every layer, rounding activations and
    # gradients on the way, and the error grows with the network's
    # conditioning rather than with u alone: measured 10-14 u for bfloat16
    # (about 0.05 of the step) and 5-43 u for float16 (at most 0.02) on the
    # three backends. The step must match to 10%; a lost term, a doubled loss
    # or an unscaled gradient moves it by 85% or more.
    error = np.linalg.norm(step - expected_step) / np.linalg.norm(expected_step)
    assert error < 0.1
