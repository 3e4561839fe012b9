import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import keras_imsvd
from keras_imsvd import IMSVDModel
from tests import reference


def _model(bin_size=8, projector="32-32", **kwargs):
    encoder = keras_imsvd.backbones.small_convnet(input_shape=(8, 8, 1), widths=(8, 16))
    return IMSVDModel(encoder, projector=projector, bin_size=bin_size, **kwargs)


def _images(rng, n=64):
    return rng.random((n, 8, 8, 1)).astype("float32")


def _views(rng, x):
    noise = lambda: rng.normal(scale=0.05, size=x.shape).astype("float32")  # noqa: E731
    return {"view_1": x + noise(), "view_2": x + noise()}


def test_fit_lowers_loss_and_logs_every_term(rng):
    x = _images(rng)
    views = _views(rng, x)
    dataset = tf.data.Dataset.from_tensor_slices(views).batch(16, drop_remainder=True)
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    history = model.fit(dataset, epochs=6, verbose=0).history
    assert set(history) == {
        "loss",
        "invariance_loss",
        "diagonal_loss",
        "off_diagonal_loss",
    }
    assert history["loss"][-1] < history["loss"][0] - 0.05
    # The logged total is the weighted sum of the logged terms.
    total = [
        a + b + c
        for a, b, c in zip(
            history["invariance_loss"],
            history["diagonal_loss"],
            history["off_diagonal_loss"],
        )
    ]
    np.testing.assert_allclose(history["loss"], total, rtol=1e-4, atol=1e-5)


def test_loss_matches_reference_on_model_codes(rng):
    x = _images(rng, 32)
    views = _views(rng, x)
    model = _model(diagonal_weight=0.5, off_diagonal_weight=2.0)
    model.compile()
    out = model(views, training=False)
    p1 = ops.convert_to_numpy(out["view_1"])
    p2 = ops.convert_to_numpy(out["view_2"])
    metrics = model.evaluate(views, batch_size=32, verbose=0, return_dict=True)
    expected = reference.loss_terms(p1, p2)
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        metrics["loss"], reference.loss(p1, p2, (1.0, 0.5, 2.0)), rtol=1e-5
    )


def _reference_step(model, views):
    """Float64 reference of a training step from the model's current weights.

    Returns the unweighted loss terms, the weighted total, and the gradient of
    the total with respect to the projector's last kernel `W` (`z = h W`, no
    bias): `h1^T dL/dz1 + h2^T dL/dz2`, with `dL/dz` by central differences.
    """
    bin_size, temperature = model.bin_size, model.temperature
    weights = (
        model.invariance_weight,
        model.diagonal_weight,
        model.off_diagonal_weight,
    )
    kernel = ops.convert_to_numpy(model.projector.layers[-1].kernel)
    hidden, logits = [], []
    for key in ("view_1", "view_2"):
        h = model.encoder(views[key], training=True)
        for layer in model.projector.layers[:-1]:
            h = layer(h, training=True)
        hidden.append(ops.convert_to_numpy(h).astype("float64"))
        logits.append(hidden[-1] @ kernel.astype("float64"))  # (N, D)

    def total(z1, z2):
        p1 = reference.soft_codes(z1, bin_size, temperature)
        p2 = reference.soft_codes(z2, bin_size, temperature)
        return reference.loss(p1, p2, weights)

    step = 1e-6
    gradient = np.zeros_like(kernel, dtype="float64")
    for view in range(2):
        dz = np.zeros_like(logits[view])  # (N, D)
        for index in np.ndindex(*dz.shape):
            shifted = [[z.copy() for z in logits] for _ in range(2)]
            shifted[0][view][index] += step
            shifted[1][view][index] -= step
            dz[index] = (total(*shifted[0]) - total(*shifted[1])) / (2 * step)
        gradient += hidden[view].T @ dz
    p1, p2 = (reference.soft_codes(z, bin_size, temperature) for z in logits)
    return reference.loss_terms(p1, p2), total(*logits), gradient


def _assert_step_matches(logs, expected, kernel_before, kernel_after, lr):
    terms, total, gradient = expected
    for name, value in terms.items():
        np.testing.assert_allclose(logs[name], value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-5, atol=1e-6)
    # Plain SGD: W <- W - lr dL/dW.
    np.testing.assert_allclose(
        (kernel_before - kernel_after) / lr,
        gradient,
        rtol=1e-3,
        atol=1e-3 * np.abs(gradient).max(),
    )


def test_fit_and_train_on_batch_match_float64_reference(rng):
    # Temperature and term weights away from their defaults: each must reach
    # the loss, its logged terms and the update.
    model = _model(
        bin_size=8,
        projector="32-32",
        temperature=0.3,
        invariance_weight=1.5,
        diagonal_weight=0.5,
        off_diagonal_weight=2.0,
    )
    lr = 0.5
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr))
    views = _views(rng, _images(rng, 8))
    model.build((None, 8, 8, 1))
    kernel = model.projector.layers[-1].kernel

    expected = _reference_step(model, views)
    before = ops.convert_to_numpy(kernel)
    history = model.fit(views, batch_size=8, epochs=1, verbose=0).history
    logs = {name: values[0] for name, values in history.items()}
    _assert_step_matches(logs, expected, before, ops.convert_to_numpy(kernel), lr)

    expected = _reference_step(model, views)
    before = ops.convert_to_numpy(kernel)
    logs = model.train_on_batch(views, return_dict=True)
    _assert_step_matches(logs, expected, before, ops.convert_to_numpy(kernel), lr)


def test_dict_and_tuple_views_agree(rng):
    x = _images(rng, 32)
    views = _views(rng, x)
    model = _model()
    model.compile()
    as_dict = tf.data.Dataset.from_tensor_slices(views).batch(16)
    as_tuple = tf.data.Dataset.from_tensor_slices(
        ((views["view_1"], views["view_2"]),)
    ).batch(16)
    # NumPy arrays: `x=((x1, x2),)`, as the class docstring promises; first,
    # so that the model is built from this structure.
    c = model.evaluate(
        ((views["view_1"], views["view_2"]),),
        batch_size=16,
        verbose=0,
        return_dict=True,
    )
    a = model.evaluate(as_dict, verbose=0, return_dict=True)
    b = model.evaluate(as_tuple, verbose=0, return_dict=True)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6)
        np.testing.assert_allclose(a[name], c[name], rtol=1e-6)


def test_each_view_goes_through_the_encoder_alone(rng):
    # In training mode BatchNorm normalises with the statistics of its own
    # batch; the codes of a view must not depend on the other view.
    x = _images(rng, 16)
    model = _model()
    out_a = model({"view_1": x, "view_2": x * 0.0}, training=True)["view_1"]
    out_b = model({"view_1": x, "view_2": x + 5.0}, training=True)["view_1"]
    np.testing.assert_allclose(
        ops.convert_to_numpy(out_a), ops.convert_to_numpy(out_b), atol=1e-6
    )


def test_inference_helpers(rng):
    x = _images(rng, 20)
    model = _model(bin_size=8, projector="32-24")
    features = model.embed(x)
    soft = model.discretize(x)
    hard = model.codes(x)
    assert features.shape == (20, 16)
    assert soft.shape == (20, 3, 8) and soft.dtype == np.float32
    assert np.all(np.abs(soft.sum(-1) - 1.0) <= 8e-8 + 1e-6)
    assert hard.shape == (20, 3) and hard.dtype == np.int32
    np.testing.assert_array_equal(hard, soft.argmax(-1))
    assert model.num_variables == 3 and model.embedding_size == 24


def test_keras_round_trip_and_training_continues(tmp_path, rng):
    x = _images(rng, 32)
    views = _views(rng, x)
    model = _model(temperature=0.5, invariance_weight=2.0)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(views, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "imsvd.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, IMSVDModel)
    assert loaded.temperature == 0.5 and loaded.invariance_weight == 2.0
    np.testing.assert_array_equal(loaded.embed(x), model.embed(x))
    np.testing.assert_array_equal(loaded.discretize(x), model.discretize(x))
    np.testing.assert_array_equal(loaded.codes(x), model.codes(x))
    assert int(ops.convert_to_numpy(loaded.optimizer.iterations)) == 2
    # One more step from the restored state gives the same weights as one more
    # step of the original model.
    batch = {k: v[:16] for k, v in views.items()}
    model.train_on_batch(batch)
    loaded.train_on_batch(batch)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_round_trip_with_projector_model():
    projector = keras.Sequential([keras.layers.Dense(12)])
    model = _model(bin_size=4, projector=projector)
    clone = IMSVDModel.from_config(model.get_config())
    assert clone.bin_size == 4
    assert isinstance(clone.projector, keras.Sequential)


def test_mixed_precision_fit_is_finite(rng):
    keras.config.set_dtype_policy("mixed_bfloat16")
    x = _images(rng, 32) * 1e4
    model = _model()
    model.compile(optimizer="sgd")
    history = model.fit(_views(rng, x), batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    out = model(_views(rng, x), training=False)
    assert keras.backend.standardize_dtype(out["view_1"].dtype) == "float32"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"bin_size": 5, "projector": "32-32"},
            ValueError,
            "embedding_size=32, bin_size=5",
        ),
        ({"bin_size": 1}, ValueError, "bin_size=1"),
        ({"temperature": 0}, ValueError, "temperature=0"),
        ({"off_diagonal_weight": -1.0}, ValueError, "off_diagonal_weight=-1.0"),
        ({"projector": "32-abc"}, ValueError, "projector='32-abc'"),
        ({"projector": 32}, TypeError, "projector=32"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        _model(**kwargs)


def test_bad_encoder():
    with pytest.raises(TypeError, match="encoder="):
        IMSVDModel("resnet")


def test_bad_views(rng):
    model = _model()
    model.compile()
    x = _images(rng, 8)
    small = rng.random((8, 6, 6, 1)).astype("float32")
    with pytest.raises(ValueError, match="view_1 shape=\\(8, 8, 8, 1\\)"):
        model({"view_1": x, "view_2": small})
    with pytest.raises(ValueError, match="keys=\\['view_1'\\]"):
        model({"view_1": x})
    with pytest.raises(ValueError, match="1 view"):
        model((x,))
    with pytest.raises(ValueError, match="single view"):
        model.fit(x, batch_size=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="loss="):
        model.compile(optimizer="sgd", loss="mse")


def test_projector_model_must_match_bin_size():
    model = _model(bin_size=5, projector=keras.Sequential([keras.layers.Dense(12)]))
    with pytest.raises(ValueError, match="embedding_size=12, bin_size=5"):
        model.build((None, 8, 8, 1))


def test_batch_of_one_is_refused(rng):
    model = _model()
    codes = model({"view_1": _images(rng, 1), "view_2": _images(rng, 1)})
    with pytest.raises(ValueError, match="batch_size=1"):
        model.compute_loss(y_pred=codes)
