import itertools
import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_imsvd
from keras_imsvd.losses import joint_cross_entropy
from tests import reference
from tests._grad import jit
from tests._grad import value_and_grad

RTOL = 1e-5


def _codes(rng, n, k, b, temperature=1.0, scale=3.0):
    z1 = rng.normal(scale=scale, size=(n, k * b))
    z2 = z1 + rng.normal(scale=scale / 2, size=(n, k * b))
    p1 = reference.soft_codes(z1, b, temperature).astype("float32")
    p2 = reference.soft_codes(z2, b, temperature).astype("float32")
    return p1, p2


def _numpy(terms):
    return {name: float(ops.convert_to_numpy(v)) for name, v in terms.items()}


@pytest.mark.parametrize(
    "n, k, b, temperature",
    [
        (2, 1, 2, 1.0),
        (7, 2, 3, 0.1),
        (64, 3, 32, 5.0),
        (512, 2, 32, 1.0),
        (33, 102, 3, 1.0),
        (16, 102, 80, 0.1),
        (300, 1, 80, 1.0),
    ],
)
def test_terms_match_float64_transcription(rng, n, k, b, temperature):
    p1, p2 = _codes(rng, n, k, b, temperature)
    total, terms = joint_cross_entropy(p1, p2)
    expected = reference.loss_terms(p1, p2)
    got = _numpy(terms)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=RTOL, atol=1e-7)
    np.testing.assert_allclose(
        float(total), reference.loss(p1, p2), rtol=RTOL, atol=1e-7
    )


def test_non_default_weights(rng):
    p1, p2 = _codes(rng, 40, 4, 8)
    weights = (0.3, 2.0, 0.0)
    total, _ = joint_cross_entropy(
        p1,
        p2,
        invariance_weight=weights[0],
        diagonal_weight=weights[1],
        off_diagonal_weight=weights[2],
    )
    np.testing.assert_allclose(float(total), reference.loss(p1, p2, weights), rtol=RTOL)
    wrapper = keras_imsvd.losses.JointCrossEntropy(
        invariance_weight=0.5, diagonal_weight=1.5, off_diagonal_weight=0.25
    )
    np.testing.assert_allclose(
        float(wrapper(p1, p2)),
        reference.loss(p1, p2, (0.5, 1.5, 0.25)),
        rtol=RTOL,
    )


def test_single_variable_has_no_off_block_term(rng):
    p1, p2 = _codes(rng, 10, 1, 5)
    _, terms = joint_cross_entropy(p1, p2)
    assert float(terms["off_diagonal_loss"]) == 0.0


def test_gradients_match_finite_differences(rng):
    n, k, b = 4, 3, 3
    p1, p2 = (p.astype("float64") for p in _codes(rng, n, k, b, scale=1.0))
    weights = (1.0, 0.7, 1.3)

    def fn(a, c):
        total, _ = joint_cross_entropy(
            a,
            c,
            invariance_weight=weights[0],
            diagonal_weight=weights[1],
            off_diagonal_weight=weights[2],
        )
        return total

    _, (g1, g2) = value_and_grad(fn, p1.astype("float32"), p2.astype("float32"))
    h = 1e-6
    for grad, which in ((g1, 0), (g2, 1)):
        numeric = np.zeros_like(p1)
        for idx in itertools.product(*map(range, p1.shape)):
            args_plus = [p1.copy(), p2.copy()]
            args_minus = [p1.copy(), p2.copy()]
            args_plus[which][idx] += h
            args_minus[which][idx] -= h
            numeric[idx] = (
                reference.loss(*args_plus, weights)
                - reference.loss(*args_minus, weights)
            ) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=2e-3, atol=2e-4)


def _analytic_gradient(p1, p2):
    """d L / d p1 for unit weights, float64, derived from the formulas."""
    n, k, b = p1.shape
    agreement = np.sum(p1 * p2, axis=-1, keepdims=True)
    g_inv = -p2 / agreement / (n * k)
    diagonal = np.mean(p1 * p2, axis=0)
    g_dia = (np.log(diagonal) + 1.0)[None] * p2 / (n * k)
    joint = reference.joint_matrix(p1, p2)
    g_all = (p2.reshape(n, -1) @ (np.log(joint) + 1.0).T).reshape(n, k, b) / n
    blocks = np.einsum("nkb,nkc->kbc", p1, p2) / n
    g_blocks = np.einsum("kbc,nkc->nkb", np.log(blocks) + 1.0, p2) / n
    g_off = (g_all - g_blocks) / (k * (k - 1))
    return g_inv + g_dia + g_off


def test_gradients_match_analytic_float64(rng):
    # Every backend is held to the same float64 gradient, so they agree with
    # each other as well.
    p1, p2 = _codes(rng, 32, 4, 8)
    _, (g1, _) = value_and_grad(lambda a, c: joint_cross_entropy(a, c)[0], p1, p2)
    expected = _analytic_gradient(p1.astype("float64"), p2.astype("float64"))
    np.testing.assert_allclose(g1, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_reference_gradients_match_finite_differences(rng, k):
    # The float64 gradients that the multi-device tests compare with.
    p1, p2 = (reference.soft_codes(rng.normal(size=(5, k * 4)), 4) for _ in "12")
    weights = (0.7, 1.9, 0.4)
    h = 1e-6
    for which, expected in enumerate(reference.loss_gradients(p1, p2, weights)):
        numeric = np.zeros_like(p1)
        for idx in np.ndindex(p1.shape):
            plus, minus = [p1.copy(), p2.copy()], [p1.copy(), p2.copy()]
            plus[which][idx] += h
            minus[which][idx] -= h
            numeric[idx] = (
                reference.loss(*plus, weights) - reference.loss(*minus, weights)
            ) / (2 * h)
        np.testing.assert_allclose(expected, numeric, rtol=1e-6, atol=1e-8)


def test_weighted_gradients_match_float64_reference(rng):
    p1, p2 = _codes(rng, 16, 3, 5, temperature=0.5)
    weights = (0.7, 1.9, 0.4)

    def fn(a, c):
        return joint_cross_entropy(a, c, *weights)[0]

    value, grads = value_and_grad(fn, p1, p2)
    np.testing.assert_allclose(value, reference.loss(p1, p2, weights), rtol=RTOL)
    for grad, expected in zip(grads, reference.loss_gradients(p1, p2, weights)):
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


def test_swapping_views_keeps_invariance_and_diagonal(rng):
    p1, p2 = _codes(rng, 50, 5, 6)
    _, a = joint_cross_entropy(p1, p2)
    _, c = joint_cross_entropy(p2, p1)
    a, c = _numpy(a), _numpy(c)
    for name in ("invariance_loss", "diagonal_loss"):
        np.testing.assert_allclose(a[name], c[name], rtol=1e-6)


def test_permuting_the_batch_changes_nothing(rng):
    p1, p2 = _codes(rng, 50, 5, 6)
    order = rng.permutation(50)
    _, a = joint_cross_entropy(p1, p2)
    _, c = joint_cross_entropy(p1[order], p2[order])
    a, c = _numpy(a), _numpy(c)
    for name in a:
        np.testing.assert_allclose(a[name], c[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("b", [3, 4, 16])
def test_loss_stays_above_bound(rng, b):
    for temperature in (0.05, 1.0, 10.0):
        p1, p2 = _codes(rng, 64, 4, b, temperature, scale=5.0)
        total, _ = joint_cross_entropy(p1, p1)
        assert float(total) >= -3 * math.log(b) - 1e-5
        total, _ = joint_cross_entropy(p1, p2)
        assert float(total) >= -3 * math.log(b) - 1e-5


@pytest.mark.parametrize("k, b", [(2, 3), (3, 3), (2, 5)])
def test_bound_reached_by_uniform_independent_one_hot_codes(k, b):
    # Every combination of bins appears once: each variable is uniform over its
    # bins, and any two variables are independent.
    bins = np.array(list(itertools.product(range(b), repeat=k)))  # (b^k, k)
    one_hot = np.eye(b, dtype="float32")[bins]  # (b^k, k, b)
    total, terms = joint_cross_entropy(one_hot, one_hot)
    terms = _numpy(terms)
    np.testing.assert_allclose(terms["invariance_loss"], 0.0, atol=1e-7)
    np.testing.assert_allclose(terms["diagonal_loss"], -math.log(b), rtol=1e-6)
    np.testing.assert_allclose(terms["off_diagonal_loss"], -2 * math.log(b), rtol=1e-6)
    np.testing.assert_allclose(float(total), -3 * math.log(b), rtol=1e-6)


def test_jit_matches_eager(rng):
    p1, p2 = _codes(rng, 24, 4, 8)

    def fn(a, c):
        return joint_cross_entropy(a, c, diagonal_weight=0.5)[0]

    eager = float(ops.convert_to_numpy(fn(p1, p2)))
    compiled = jit(fn)
    tensors = (ops.convert_to_tensor(p1), ops.convert_to_tensor(p2))
    jitted = float(ops.convert_to_numpy(compiled(*tensors)))
    np.testing.assert_allclose(jitted, eager, rtol=1e-5)
    # Compiled code does not read the codes: no check, so no error (and no
    # split of the compiled graph, where the check would run and raise).
    negative = _off_simplex(p1, "negative")
    with pytest.raises(ValueError, match="min"):
        fn(negative, p2)
    value = compiled(ops.convert_to_tensor(negative), tensors[1])
    assert np.isnan(float(ops.convert_to_numpy(value)))


def _off_simplex(p, kind):
    """A copy of the codes `p` (N, K, b) with one flaw of the given kind."""
    p = p.copy()
    if kind == "negative":
        # The row still sums to 1; the product with view 2 turns negative.
        p[3, 1, :2] = [-0.5, 1.5 - p[3, 1, 2:].sum()]
    elif kind == "nan":
        p[0, 0, 0] = np.nan
    elif kind == "infinite":
        p[1, 1, 1] = -np.inf
        p[5, 0, 2] = np.inf
    elif kind == "unnormalised":
        p[2, 0] *= 1.05
    return p


@pytest.mark.parametrize(
    "kind, message",
    [
        ("negative", r"`{v}` must hold probabilities >= 0.*min\({v}\)=-0\.5$"),
        ("nan", r"`{v}` must hold finite.*{v} with 1 NaN or infinite entries$"),
        ("infinite", r"{v} with 2 NaN or infinite entries$"),
        ("unnormalised", r"row {v}\[n, k, :\].*row sums of {v} from 1 to 1\.05$"),
    ],
)
@pytest.mark.parametrize("view", ["p1", "p2"])
def test_codes_off_the_simplex_raise_in_eager_mode(rng, kind, message, view):
    codes = dict(zip(("p1", "p2"), _codes(rng, 8, 2, 4)))
    codes[view] = _off_simplex(codes[view], kind)
    with pytest.raises(ValueError, match=message.format(v=view)):
        joint_cross_entropy(codes["p1"], codes["p2"])
    tensors = {name: ops.convert_to_tensor(p) for name, p in codes.items()}
    with pytest.raises(ValueError, match=message.format(v=view)):
        keras_imsvd.losses.JointCrossEntropy()(tensors["p1"], tensors["p2"])


def test_validate_false_skips_the_check_and_computes_the_formula(rng):
    p1, p2 = _codes(rng, 8, 2, 4)
    unnormalised = _off_simplex(p1.copy(), "unnormalised")
    total, _ = joint_cross_entropy(unnormalised, p2, validate=False)
    np.testing.assert_allclose(
        float(total), reference.loss(unnormalised, p2), rtol=RTOL
    )
    total, terms = joint_cross_entropy(_off_simplex(p1, "nan"), p2, validate=False)
    assert np.isnan(float(total)) and np.isnan(float(terms["diagonal_loss"]))


def test_codes_within_the_simplex_tolerance_pass(rng):
    p1, p2 = _codes(rng, 8, 2, 4)
    # The clamp of one-hot codes, and rows 0.9% off: accepted, and computed.
    one_hot = np.maximum(np.eye(4, dtype="float32")[rng.integers(0, 4, (8, 2))], 1e-8)
    for scale in (0.991, 1.009):
        total, _ = joint_cross_entropy(one_hot, p2 * np.float32(scale))
        expected = reference.loss(one_hot, p2 * np.float32(scale))
        np.testing.assert_allclose(float(total), expected, rtol=RTOL)
    # Logits are not codes.
    with pytest.raises(ValueError, match="p1"):
        joint_cross_entropy(rng.normal(size=(8, 2, 4)).astype("float32"), p2)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_loss_is_float32_and_finite(rng, policy):
    keras.config.set_dtype_policy(policy)
    dense = keras.layers.Dense(64)
    layer = keras_imsvd.SoftVariableDiscretization(bin_size=16)
    for magnitude in (1.0, 1e4):
        x = (rng.normal(size=(32, 8)) * magnitude).astype("float32")
        x2 = (rng.normal(size=(32, 8)) * magnitude).astype("float32")
        h1, h2 = dense(x), dense(x2)
        assert keras.backend.standardize_dtype(h1.dtype) != "float32"
        p1, p2 = layer(h1), layer(h2)
        total, terms = joint_cross_entropy(p1, p2)
        assert keras.backend.standardize_dtype(total.dtype) == "float32"
        assert np.isfinite(float(total))
        assert all(np.isfinite(v) for v in _numpy(terms).values())
        # Low-precision codes fed directly are computed in float32 too.
        low = ops.cast(p1, keras.config.dtype_policy().compute_dtype)
        total_low, _ = joint_cross_entropy(low, low)
        assert keras.backend.standardize_dtype(total_low.dtype) == "float32"
        assert np.isfinite(float(total_low))


def test_bad_input_raises_clear_errors(rng):
    p1, p2 = _codes(rng, 8, 2, 4)
    with pytest.raises(TypeError, match="p1.dtype=int32"):
        joint_cross_entropy(p1.astype("int32"), p2)
    with pytest.raises(ValueError, match=r"p1.shape=\(8, 2, 4\), p2.shape=\(8, 4, 2\)"):
        joint_cross_entropy(p1, p2.reshape(8, 4, 2))
    with pytest.raises(ValueError, match="batch_size=1"):
        joint_cross_entropy(p1[:1], p2[:1])
    with pytest.raises(ValueError, match="diagonal_weight=-1"):
        joint_cross_entropy(p1, p2, diagonal_weight=-1.0)
    with pytest.raises(TypeError, match="invariance_weight='1'"):
        joint_cross_entropy(p1, p2, invariance_weight="1")
    with pytest.raises(ValueError, match=r"p1.shape=\(8, 8\)"):
        joint_cross_entropy(p1.reshape(8, 8), p2.reshape(8, 8))
    with pytest.raises(ValueError, match="off_diagonal_weight=-0.5"):
        keras_imsvd.losses.JointCrossEntropy(off_diagonal_weight=-0.5)


def test_wrapper_config_round_trip():
    loss = keras_imsvd.losses.JointCrossEntropy(
        invariance_weight=0.5, diagonal_weight=2.0, off_diagonal_weight=0.1
    )
    config = keras.saving.serialize_keras_object(loss)
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, keras_imsvd.losses.JointCrossEntropy)
    assert restored.get_config() == loss.get_config()
