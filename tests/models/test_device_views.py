"""`IMSVDModel(views=...)`: the views made inside the step, on backend tensors.

Checked against the tf.data path (`multiview_dataset`) by the distributions of
what the layers draw, and against the layers called eagerly on backend tensors
draw for draw: one `fit` step logs the loss of the views that the same layers,
from the same seed states, give outside the step.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops
from scipy import stats

import keras_imsvd
from keras_imsvd import augment
from keras_imsvd.data import multiview_dataset

COUNT = 2000  # images per path in the statistical comparisons
BATCH = 500
# Two-sample Kolmogorov-Smirnov tests and binomial bounds are set so that a
# correct implementation fails about once in 10^4 runs or less.
KS_P_VALUE = 1e-4


def _model(views, image_size=16):
    encoder = keras.Sequential(
        [
            keras.Input((image_size, image_size, 3)),
            keras.layers.Conv2D(8, 3, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    return keras_imsvd.IMSVDModel(
        encoder, projector="32-32", bin_size=8, temperature=0.2, views=views
    )


def _images(count=16, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def _numpy(values):
    return [ops.convert_to_numpy(v) for v in values]


# -- draw for draw against the layers called eagerly ----------------------------


def test_fit_step_logs_the_loss_of_the_views_the_layers_give():
    x = _images()
    model = _model(augment.cifar_views(16, seed=3))
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.build(x.shape)
    # Seed states and BatchNorm statistics are non-trainable variables.
    variables = model.trainable_variables + model.non_trainable_variables
    before = _numpy(variables)
    seeds = _numpy(model.non_trainable_variables)
    history = model.fit(x, batch_size=16, epochs=1, shuffle=False, verbose=0)
    logged = history.history["loss"][0]
    assert np.isfinite(logged)
    for a, b in zip(_numpy(model.trainable_variables), before):
        assert not np.array_equal(a, b)
    # The seed states moved: the next step draws new views.
    after = _numpy(model.non_trainable_variables)
    assert any(not np.array_equal(a, b) for a, b in zip(after, seeds))

    def loss_of_eager_views():
        images = ops.cast(ops.convert_to_tensor(x), "float32") / 255.0
        views = {
            key: view(images, training=True)
            for key, view in zip(("view_1", "view_2"), model.views)
        }
        codes = model(views, training=True)
        return float(ops.convert_to_numpy(model.compute_loss(y_pred=codes)))

    for variable, value in zip(variables, before):
        variable.assign(value)
    expected = loss_of_eager_views()
    # The same draws: the seed states end where the step left them.
    for a, b in zip(_numpy(model.non_trainable_variables), after):
        if a.dtype.kind in "iu":
            np.testing.assert_array_equal(a, b)
    other = loss_of_eager_views()  # the next draws, for the scale of a change
    # float32 rounding of one forward pass (jitted or not) is about 1e-6 of
    # the loss; other views of the same images move it far more.
    np.testing.assert_allclose(logged, expected, rtol=1e-4, atol=1e-5)
    assert abs(other - expected) > 100 * (1e-4 * abs(expected) + 1e-5)


def test_evaluate_makes_views_without_changing_weights():
    x = _images(32)
    model = _model(augment.cifar_views(16, seed=1))
    model.compile(optimizer="sgd")
    model.build(x.shape)
    before = _numpy(model.trainable_variables)
    loss = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)["loss"]
    assert np.isfinite(loss)
    for a, b in zip(_numpy(model.trainable_variables), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_float_images_equal_uint8_images_over_255():
    x = _images(16)
    losses = []
    for images in (x, x.astype("float32") / 255.0):
        keras.utils.set_random_seed(0)
        model = _model(augment.cifar_views(16, seed=7))
        model.compile(optimizer="sgd")
        history = model.fit(images, batch_size=16, epochs=1, verbose=0)
        losses.append(history.history["loss"][0])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_generators_and_labels_are_accepted():
    x = _images(32)
    y = np.arange(32) % 3

    def batches():
        while True:
            for start in (0, 16):
                yield x[start : start + 16], y[start : start + 16]

    model = _model(augment.cifar_views(16, seed=2))
    model.compile(optimizer="sgd")
    history = model.fit(batches(), steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_a_torch_dataloader_is_accepted():
    torch = pytest.importorskip("torch")
    images = torch.from_numpy(_images(32))
    dataset = torch.utils.data.TensorDataset(images, torch.arange(32))
    loader = torch.utils.data.DataLoader(dataset, batch_size=16)
    model = _model(augment.cifar_views(16, seed=2))
    model.compile(optimizer="sgd")
    history = model.fit(loader, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.slow
def test_views_change_the_encoder_input_size():
    # Digits views upsample 8 px images to 16 px; `build` takes the 8 px shape.
    x, _ = keras_imsvd.data.load_digits()
    encoder = keras_imsvd.backbones.small_convnet(input_shape=(16, 16, 1))
    model = keras_imsvd.IMSVDModel(
        encoder, projector="32-32", bin_size=8, views=augment.digits_views(16, seed=0)
    )
    model.build((None, 8, 8, 1))
    assert tuple(model.encoder.input_shape) == (None, 16, 16, 1)
    model.compile(optimizer="sgd")
    history = model.fit(x[:64], batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# -- bad input ----------------------------------------------------------------


def test_views_given_to_a_model_with_views_are_refused():
    x = _images(8).astype("float32") / 255.0
    model = _model(augment.cifar_views(16, seed=0))
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="plain batches of images.*view_1"):
        model.fit({"view_1": x, "view_2": x}, batch_size=8, verbose=0)


def test_integer_images_other_than_uint8_are_refused():
    model = _model(augment.cifar_views(16, seed=0))
    model.compile(optimizer="sgd")
    x = _images(8).astype("int32")
    model.build(x.shape)  # else Keras' automatic build reports the error
    with pytest.raises(TypeError, match="images.dtype=int32"):
        model.fit(x, batch_size=8, verbose=0)


def test_views_must_be_a_pair_of_layers():
    with pytest.raises(TypeError, match="views=.*"):
        _model(augment.cifar_views(16)[0])
    with pytest.raises(TypeError, match="pair"):
        _model((lambda x: x, lambda x: x))


def test_a_batch_of_one_image_is_skipped():
    x = _images(1)
    model = _model(augment.cifar_views(16, seed=0))
    model.compile(optimizer="sgd")
    model.build(x.shape)
    before = _numpy(model.trainable_variables)
    with pytest.warns(UserWarning, match="single image"):
        model.fit(x, batch_size=1, epochs=1, verbose=0)
    for a, b in zip(_numpy(model.trainable_variables), before):
        np.testing.assert_array_equal(a, b)


# -- serialisation --------------------------------------------------------------


@pytest.mark.slow
def test_keras_round_trip_keeps_the_views_and_their_seeds(tmp_path):
    x = _images(16)
    model = _model(augment.cifar_views(16, seed=4))
    model.compile(optimizer="sgd")
    model.fit(x, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    # As JSON holds them (tuples become lists).
    assert [json.dumps(v.get_config()) for v in loaded.views] == [
        json.dumps(v.get_config()) for v in model.views
    ]
    for a, b in zip(_numpy(loaded.weights), _numpy(model.weights)):
        np.testing.assert_array_equal(a, b)
    # Keras saves no seed-generator state: the loaded views draw from the
    # start of their seeds, as new views with the same seed do.
    fresh = augment.cifar_views(16, seed=4)
    images = ops.convert_to_tensor(x.astype("float32") / 255.0)
    for new, restored in zip(fresh, loaded.views):
        np.testing.assert_allclose(
            ops.convert_to_numpy(restored(images, training=True)),
            ops.convert_to_numpy(new(images, training=True)),
            atol=1e-6,
        )


def test_configs_without_views_load_as_before():
    model = _model(None)
    config = model.get_config()
    assert config["views"] is None
    del config["views"]  # a model saved before the argument existed
    restored = keras_imsvd.IMSVDModel.from_config(config)
    assert restored.views is None


# -- the same transforms as the tf.data path, statistically ---------------------


def _marker_images(size=32):
    """Channel 0 is the row, channel 1 the column (pixel centres / size)."""
    ramp = (np.arange(size, dtype="float32") + 0.5) / size
    images = np.empty((COUNT, size, size, 3), "float32")
    images[..., 0] = ramp[:, None]
    images[..., 1] = ramp[None, :]
    images[..., 2] = 0.5
    return images


def _on_device(layer, images):
    out = [
        ops.convert_to_numpy(
            layer(ops.convert_to_tensor(images[i : i + BATCH]), training=True)
        )
        for i in range(0, len(images), BATCH)
    ]
    return np.concatenate(out).astype("float32")


def _in_tf_data(layer, images):
    dataset = multiview_dataset(
        images, views=(layer, layer), batch_size=BATCH, shuffle=False, seed=0
    )
    return np.concatenate(
        [np.asarray(batch["view_1"]) for batch in dataset.as_numpy_iterator()]
    ).astype("float32")


def _crop_statistics(out):
    """Spans of the sampled rows and columns (in pixels), and the flips."""
    rows, cols = out[..., 0] * 32, out[..., 1] * 32
    height = rows.max(axis=(1, 2)) - rows.min(axis=(1, 2))
    width = cols.max(axis=(1, 2)) - cols.min(axis=(1, 2))
    flipped = cols[:, 0, -1] < cols[:, 0, 0]
    return height * width / 32**2, width / height, flipped


def _assert_same_distribution(a, b, what):
    result = stats.ks_2samp(a, b)
    assert result.pvalue > KS_P_VALUE, f"{what}: {result}"


def _assert_rate(observed, rate, what):
    # Binomial(COUNT, rate): a bound of 5 standard deviations.
    bound = 5 * np.sqrt(rate * (1 - rate) / COUNT)
    assert abs(observed.mean() - rate) < bound, f"{what}: {observed.mean()}"


def test_random_resized_crop_draws_as_in_tf_data():
    images = _marker_images()

    def layer(seed):
        return augment.RandomResizedCrop(
            32, 32, scale=(0.2, 1.0), horizontal_flip=True, seed=seed
        )

    device = _crop_statistics(_on_device(layer(1), images))
    data = _crop_statistics(_in_tf_data(layer(2), images))
    _assert_same_distribution(device[0], data[0], "crop area")
    _assert_same_distribution(device[1], data[1], "aspect ratio")
    # Spans of the marker: at most the image, at least the smallest crop
    # (area 0.2, ratio 3/4) less a pixel of interpolation margin per side.
    for area, ratio, flipped in (device, data):
        assert area.max() <= 1.0 + 1e-5 and area.min() > 0.2 * (1 - 2 / 16) ** 2
        assert ratio.min() > 0.75 * (1 - 2 / 16) and ratio.max() < 4 / 3 / (1 - 2 / 16)
        _assert_rate(flipped, 0.5, "flips")


def test_color_jitter_factors_as_in_tf_data():
    images = np.full((COUNT, 4, 4, 3), 0.5, "float32")

    def layer(seed):
        return augment.ColorJitter(0.4, 0.0, 0.0, 0.0, seed=seed)

    # Brightness only, on gray 0.5: x -> b x with b ~ U(0.6, 1.4).
    factors = [
        out[:, 0, 0, 0] / 0.5
        for out in (_on_device(layer(1), images), _in_tf_data(layer(2), images))
    ]
    _assert_same_distribution(*factors, "brightness factor")
    for factor in factors:
        assert factor.min() >= 0.6 - 1e-5 and factor.max() <= 1.4 + 1e-5
        # U(0.6, 1.4): P(min > 0.62) = (1 - 0.025)^2000 < 1e-21.
        assert factor.min() < 0.62 and factor.max() > 1.38


def test_grayscale_and_color_jitter_rates_as_in_tf_data():
    images = _marker_images(4)

    def grayscale(seed):
        return augment.RandomGrayscale(factor=0.2, seed=seed)

    def jitter(seed):
        jitter = augment.ColorJitter(0.4, 0.4, 0.4, 0.1, seed=seed)
        return augment.RandomApply(jitter, rate=0.8, seed=seed + 10)

    for outputs in (
        (_on_device(grayscale(1), images), _in_tf_data(grayscale(2), images)),
    ):
        for out in outputs:
            gray = np.all(np.isclose(out[..., 0], out[..., 1], atol=1e-6), (1, 2))
            _assert_rate(gray, 0.2, "grayscale")
    for out in (_on_device(jitter(1), images), _in_tf_data(jitter(2), images)):
        changed = np.any(np.abs(out - images) > 1e-6, axis=(1, 2, 3))
        _assert_rate(changed, 0.8, "colour jitter")


# -- no TensorFlow ----------------------------------------------------------------

# Makes `import tensorflow` fail as if it were not installed; find_spec still
# answers (without an origin), which torch._dynamo asks at import.
BLOCK_TENSORFLOW = textwrap.dedent(
    """
    import importlib.machinery
    import sys


    class _Refuse:
        def create_module(self, spec):
            raise ModuleNotFoundError(
                f"No module named {spec.name!r}", name=spec.name
            )

        def exec_module(self, module):
            pass


    class _BlockTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                return importlib.machinery.ModuleSpec(name, _Refuse())
            return None


    sys.meta_path.insert(0, _BlockTensorFlow())
    """
)


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow", reason="the backend is TensorFlow"
)
def test_fit_with_device_views_imports_no_tensorflow(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import keras
        import keras_imsvd

        x = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), "uint8")
        encoder = keras.Sequential(
            [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
             keras.layers.GlobalAveragePooling2D()]
        )
        views = keras_imsvd.augment.imagenet_views(16, seed=0)
        model = keras_imsvd.IMSVDModel(encoder, projector="16", bin_size=4,
                                       views=views)
        model.compile(optimizer="sgd")
        history = model.fit(x, batch_size=16, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        loaded = [m for m in sys.modules if m.split(".")[0] == "tensorflow"]
        assert not loaded, loaded
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            print("no tensorflow")
        """
    )
    env = dict(
        os.environ, PYTHONPATH=str(tmp_path), KERAS_BACKEND=keras.backend.backend()
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no tensorflow" in result.stdout
