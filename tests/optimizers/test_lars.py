"""LARS against a float64 NumPy transcription of the published update rule."""

import keras
import numpy as np
import pytest

from keras_imsvd.optimizers import LARS
from keras_imsvd.optimizers import published_schedule

RTOL = 1e-5
ATOL = 1e-7


def _numpy_lars_step(p, g, mu, lr, momentum, weight_decay, eta, adapted, decayed):
    """One step of the published PyTorch LARS in float64; returns (p, mu)."""
    if adapted and decayed:
        g = g + weight_decay * p
    if adapted:
        p_norm = np.linalg.norm(p)
        g_norm = np.linalg.norm(g)
        trust = eta * p_norm / g_norm if p_norm > 0 and g_norm > 0 else 1.0
        g = g * trust
    mu = momentum * mu + g
    return p - lr * mu, mu


def _run(optimizer, values, grad_sequence):
    """Applies each list of gradients in turn; returns the variables as numpy."""
    variables = [
        keras.Variable(v.astype("float32"), name=name) for name, v in values.items()
    ]
    for grads in grad_sequence:
        optimizer.apply(
            [keras.ops.convert_to_tensor(g.astype("float32")) for g in grads],
            variables,
        )
    return [keras.ops.convert_to_numpy(v).astype("float64") for v in variables]


def _reference(values, grad_sequence, adapted, decayed, **hyper):
    params = [v.astype("float64") for v in values.values()]
    buffers = [np.zeros_like(p) for p in params]
    for grads in grad_sequence:
        for i, g in enumerate(grads):
            params[i], buffers[i] = _numpy_lars_step(
                params[i],
                g.astype("float64"),
                buffers[i],
                adapted=adapted[i],
                decayed=decayed[i],
                **hyper,
            )
    return params


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    values = {
        "kernel": rng.normal(size=(5, 3)),
        "bias": rng.normal(size=(3,)),
        "conv": rng.normal(size=(3, 3, 2, 2)),
    }
    grad_sequence = [
        [rng.normal(size=v.shape) for v in values.values()] for _ in range(6)
    ]
    return values, grad_sequence


HYPER = dict(lr=0.5, momentum=0.9, weight_decay=0.05, eta=0.02)


def _lars(**kwargs):
    return LARS(
        learning_rate=HYPER["lr"],
        momentum=HYPER["momentum"],
        weight_decay=HYPER["weight_decay"],
        eta=HYPER["eta"],
        **kwargs,
    )


def test_matches_numpy_transcription(problem):
    values, grads = problem
    got = _run(_lars(), values, grads)
    # Default: the 2-D and 4-D kernels are adapted and decayed; the bias not.
    want = _reference(values, grads, [True, False, True], [True, False, True], **HYPER)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
    # The test can tell LARS from momentum SGD: the kernel moved differently.
    sgd = _reference(values, grads, [False] * 3, [False] * 3, **HYPER)
    assert not np.allclose(want[0], sgd[0], rtol=1e-2)
    # Weight decay matters at this size.
    no_decay = _reference(values, grads, [True, False, True], [False] * 3, **HYPER)
    assert not np.allclose(want[0], no_decay[0], rtol=1e-4)


def test_excluded_bias_is_plain_momentum_sgd(problem):
    values, grads = problem
    bias = values["bias"]
    mu = np.zeros_like(bias)
    for step in grads:
        mu = HYPER["momentum"] * mu + step[1]
        bias = bias - HYPER["lr"] * mu
    got = _run(_lars(), values, grads)
    np.testing.assert_allclose(got[1], bias, rtol=RTOL, atol=ATOL)


def test_exclusion_by_name(problem):
    values, grads = problem
    # Exclude the kernels by name and adapt the bias: the reverse of the default.
    got = _run(_lars(exclude_from_adaptation=["kern", "conv"]), values, grads)
    want = _reference(
        values, grads, [False, True, False], [False, True, False], **HYPER
    )
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
    # An empty list adapts everything (You et al., 2017).
    got = _run(_lars(exclude_from_adaptation=[]), values, grads)
    want = _reference(values, grads, [True] * 3, [True] * 3, **HYPER)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


def test_exclude_from_weight_decay_keeps_adaptation(problem):
    values, grads = problem
    optimizer = _lars()
    optimizer.exclude_from_weight_decay(var_names=["kernel"])
    got = _run(optimizer, values, grads)
    want = _reference(values, grads, [True, False, True], [False, False, True], **HYPER)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
    # By variable object as well.
    variables = [keras.Variable(v.astype("float32")) for v in values.values()]
    optimizer = _lars()
    optimizer.exclude_from_weight_decay(var_list=[variables[2]])
    for step in grads:
        optimizer.apply([g.astype("float32") for g in step], variables)
    want = _reference(values, grads, [True, False, True], [True, False, False], **HYPER)
    for v, w in zip(variables, want):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(v), w, rtol=RTOL, atol=ATOL
        )
    # Too late once built: the exclusions are fixed at build time.
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["bias"])


def test_no_decoupled_decay_from_base_class():
    # With a zero gradient the trust ratio is eta * ||p|| / (wd * ||p||), so the
    # step is exactly lr * eta * p; a second, decoupled decay would add
    # lr * wd * p.
    lr, wd, eta = 0.5, 0.1, 0.01
    p0 = np.arange(1.0, 7.0).reshape(2, 3)
    got = _run(
        LARS(learning_rate=lr, momentum=0.0, weight_decay=wd, eta=eta),
        {"kernel": p0},
        [[np.zeros((2, 3))]],
    )[0]
    np.testing.assert_allclose(got, p0 * (1 - lr * eta), rtol=RTOL)


def test_zero_gradient_and_zero_weight():
    lr, momentum = 0.5, 0.9
    # Zero weights: ||p|| = 0, trust 1, plain step (decay of zero is zero).
    g = np.full((2, 2), 0.25)
    got = _run(
        LARS(learning_rate=lr, momentum=momentum),
        {"kernel": np.zeros((2, 2))},
        [[g]],
    )[0]
    np.testing.assert_allclose(got, -lr * g, rtol=RTOL)
    assert np.all(np.isfinite(got))
    # Zero gradient and no decay: ||g|| = 0, trust 1, nothing moves; then the
    # momentum of an earlier step keeps going.
    p0 = np.ones((2, 2))
    got = _run(
        LARS(learning_rate=lr, momentum=momentum, weight_decay=0.0),
        {"kernel": p0},
        [[np.zeros((2, 2))], [np.zeros((2, 2))]],
    )[0]
    np.testing.assert_allclose(got, p0, rtol=RTOL)
    got = _run(
        LARS(learning_rate=lr, momentum=momentum, weight_decay=0.0, eta=0.1),
        {"kernel": p0},
        [[g], [np.zeros((2, 2))]],
    )[0]
    want = _reference(
        {"kernel": p0},
        [[g], [np.zeros((2, 2))]],
        [True],
        [False],
        lr=lr,
        momentum=momentum,
        weight_decay=0.0,
        eta=0.1,
    )[0]
    np.testing.assert_allclose(got, want, rtol=RTOL)
    # Both zero: still finite and unchanged.
    got = _run(LARS(), {"kernel": np.zeros((2, 2))}, [[np.zeros((2, 2))]])[0]
    np.testing.assert_array_equal(got, np.zeros((2, 2)))


def test_config_round_trip():
    arguments = dict(
        learning_rate=0.3,
        momentum=0.8,
        weight_decay=1e-5,
        eta=0.002,
        exclude_from_adaptation=["bias"],
        clipnorm=1.0,
        name="my_lars",
    )
    optimizer = LARS(**arguments)
    config = optimizer.get_config()
    for key, value in arguments.items():
        expected = pytest.approx(value) if isinstance(value, float) else value
        assert config[key] == expected, key
    restored = LARS.from_config(config)
    assert restored.get_config() == config
    serialized = keras.optimizers.serialize(optimizer)
    assert serialized["registered_name"] == "keras_imsvd>LARS"
    again = keras.optimizers.deserialize(serialized)
    assert isinstance(again, LARS)
    assert again.get_config() == config


def test_config_round_trip_with_schedule():
    schedule = published_schedule(0.6, batch_size=512, steps_per_epoch=10, epochs=20)
    optimizer = LARS(learning_rate=schedule)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert restored.get_config() == optimizer.get_config()
    for step in [0, 50, 100, 199]:
        np.testing.assert_allclose(
            float(restored._learning_rate(step)), float(schedule(step)), rtol=1e-6
        )


_BAD_ARGUMENTS = [
    (dict(momentum=1.5), "momentum"),
    (dict(momentum="0.9"), "momentum"),
    (dict(weight_decay=-1.0), "weight_decay"),
    (dict(eta=0.0), "eta"),
    (dict(exclude_from_adaptation="bias"), "exclude_from_adaptation"),
    (dict(exclude_from_adaptation=[1]), "exclude_from_adaptation"),
]


def test_bad_arguments():
    # One test, not one per case: each test pays a keras clear_session.
    for kwargs, message in _BAD_ARGUMENTS:
        with pytest.raises((ValueError, TypeError), match=message):
            LARS(**kwargs)


def _tiny_model(seed=0):
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    outputs = keras.layers.Dense(3)(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
    return model


def _tiny_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.integers(0, 3, size=(64,))
    return x, y


def _compile(model, jit_compile):
    model.compile(
        optimizer=LARS(learning_rate=0.5, eta=0.01, weight_decay=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )


def test_fit_save_and_load_with_optimizer_state(tmp_path):
    x, y = _tiny_data()
    model = _tiny_model()
    _compile(model, jit_compile="auto")
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, LARS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == 8
    names = [v.path for v in model.optimizer.variables]
    assert any("momentum" in n for n in names)
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )
    # One more step from the restored state matches the original's.
    model.train_on_batch(x[:16], y[:16])
    loaded.train_on_batch(x[:16], y[:16])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # torch.compile takes ~30 s on CPU
def test_jit_compile_matches_eager():
    x, y = _tiny_data()
    weights = []
    for jit_compile in [False, True]:
        model = _tiny_model()
        _compile(model, jit_compile=jit_compile)
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    moved = [
        not np.allclose(w, w0) for w, w0 in zip(weights[0], _tiny_model().get_weights())
    ]
    assert all(moved)
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
