"""IMSVDModel at its input: uint8 images, view keys, non-finite images, and
batches of a single image from every kind of data Keras reads."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import keras_imsvd
from keras_imsvd import IMSVDModel

BACKEND = keras.backend.backend()


def _model(**kwargs):
    encoder = keras_imsvd.backbones.small_convnet(input_shape=(8, 8, 1), widths=(8, 16))
    return IMSVDModel(encoder, projector="32-32", bin_size=8, **kwargs)


def _views(rng, n):
    x = rng.random((n, 8, 8, 1)).astype("float32")
    noise = rng.normal(scale=0.05, size=x.shape).astype("float32")
    return {"view_1": x, "view_2": x + noise}


def _state(model):
    """Every number a training step may change."""
    return model.get_weights() + [
        ops.convert_to_numpy(v) for v in model.optimizer.variables
    ]


def _set_state(model, values):
    weights = len(model.get_weights())
    model.set_weights(values[:weights])
    for variable, value in zip(model.optimizer.variables, values[weights:]):
        variable.assign(value)


def _assert_same_state(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def test_uint8_images_are_scaled_by_1_over_255(rng):
    model = _model()
    images = rng.integers(0, 256, size=(10, 8, 8, 1)).astype("uint8")
    scaled = (images / 255.0).astype("float32")
    np.testing.assert_allclose(
        model.embed(images),
        ops.convert_to_numpy(model.encoder(scaled, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
    soft = model.discretize(images)
    np.testing.assert_allclose(
        soft, ops.convert_to_numpy(model(scaled, training=False)), rtol=1e-5, atol=1e-8
    )
    np.testing.assert_array_equal(model.codes(images), soft.argmax(-1))
    # The training step reads its views through `call`.
    order = rng.permutation(10)
    as_uint8 = model({"view_1": images, "view_2": images[order]}, training=True)
    as_float = model({"view_1": scaled, "view_2": scaled[order]}, training=True)
    for key in ("view_1", "view_2"):
        np.testing.assert_allclose(
            ops.convert_to_numpy(as_uint8[key]),
            ops.convert_to_numpy(as_float[key]),
            rtol=1e-5,
            atol=1e-8,
        )


def test_other_integer_images_are_refused(rng):
    model = _model()
    images = rng.integers(0, 256, size=(4, 8, 8, 1))
    for dtype in ("int32", "uint16"):
        with pytest.raises(TypeError, match=f"images.dtype={dtype}"):
            model.embed(images.astype(dtype))
        with pytest.raises(TypeError, match=f"images.dtype={dtype}"):
            model.codes(images.astype(dtype))
    with pytest.raises(TypeError, match="images.dtype=int32"):
        model({"view_1": images.astype("int32"), "view_2": images.astype("int32")})


def test_view_keys_must_be_exactly_view_1_and_view_2(rng):
    model = _model()
    model.compile()
    views = _views(rng, 8)
    message = (
        r"keys=\['view_1', 'view_2', 'view_3'\], expected keys=\['view_1', 'view_2'\]"
    )
    with pytest.raises(ValueError, match=message):
        model({**views, "view_3": views["view_1"]})
    with pytest.raises(ValueError, match=message):
        model.fit({**views, "view_3": views["view_1"]}, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match=r"keys=\['image', 'view_1'\]"):
        model({"view_1": views["view_1"], "image": views["view_2"]})


def test_check_inputs_refuses_non_finite_images_before_any_update(rng):
    model = _model(check_inputs=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    assert model.run_eagerly
    views = _views(rng, 8)
    model.build((None, 8, 8, 1))
    before = model.get_weights()
    bad = {key: value.copy() for key, value in views.items()}
    bad["view_2"][1, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="view_2 with 1 NaN or infinite"):
        model.fit(bad, batch_size=4, epochs=1, shuffle=False, verbose=0)
    _assert_same_state(before, model.get_weights())
    images = views["view_1"].copy()
    images[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="images with 1 NaN or infinite"):
        model.embed(images)
    with pytest.raises(ValueError, match="images with 1 NaN or infinite"):
        model.codes(images)
    _assert_same_state(before, model.get_weights())
    # The model still works after the errors.
    np.testing.assert_allclose(
        model.embed(views["view_1"]),
        ops.convert_to_numpy(model.encoder(views["view_1"], training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_check_inputs_arguments(tmp_path):
    with pytest.raises(TypeError, match="check_inputs='yes'"):
        _model(check_inputs="yes")
    model = _model(check_inputs=True)
    with pytest.raises(ValueError, match="jit_compile=True"):
        model.compile(jit_compile=True)
    with pytest.raises(ValueError, match="run_eagerly=False"):
        model.compile(run_eagerly=False)
    model.compile()
    model.build((None, 8, 8, 1))
    path = tmp_path / "checked.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.check_inputs is True and loaded.run_eagerly
    assert IMSVDModel.from_config(_model().get_config()).check_inputs is False


class _Batches(keras.utils.PyDataset):
    def __init__(self, views, batch_size):
        super().__init__()
        self.views = views
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.views["view_1"]) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return {key: value[rows] for key, value in self.views.items()}


def _torch_loader(views, batch_size, wrapped):
    import torch

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(views["view_1"])

        def __getitem__(self, index):
            element = {key: value[index] for key, value in views.items()}
            return (element,) if wrapped else element

    return torch.utils.data.DataLoader(Pairs(), batch_size=batch_size, drop_last=False)


def _data_kinds():
    """Ways to feed views to `fit`, as `(name, make(views, batch_size))`."""
    kinds = [
        ("numpy dict", lambda v, b: (v, b)),
        ("numpy ((x1, x2),)", lambda v, b: (((v["view_1"], v["view_2"]),), b)),
        ("PyDataset", lambda v, b: (_Batches(v, b), None)),
        (
            "tf.data",
            lambda v, b: (tf.data.Dataset.from_tensor_slices(v).batch(b), None),
        ),
        # Keras reads `(views,)` elements of a DataLoader on every backend,
        # a bare dict only on PyTorch.
        ("DataLoader (views,)", lambda v, b: (_torch_loader(v, b, True), None)),
    ]
    if BACKEND == "torch":
        kinds.append(
            ("DataLoader dict", lambda v, b: (_torch_loader(v, b, False), None))
        )
    return kinds


def test_batches_of_one_image_are_skipped(rng):
    model = _model()
    # Momentum: a step fed zero gradients would still move the weights.
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(_views(rng, 4), batch_size=4, epochs=1, verbose=0)
    steps = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logs = model.evaluate(_views(rng, 5), batch_size=4, verbose=0, return_dict=True)
        assert np.isfinite(logs["loss"])
        for name, make in _data_kinds():
            # 5 images in batches of 4: the last batch holds one image.
            data, batch_size = make(_views(rng, 5), 4)
            history = model.fit(
                data, batch_size=batch_size, shuffle=False, verbose=0
            ).history
            steps += 1
            iterations = int(ops.convert_to_numpy(model.optimizer.iterations))
            assert iterations == steps, name
            assert np.all(np.isfinite(history["loss"])), name
            # Alone, the batch of one changes nothing: no weight, BatchNorm
            # statistic or momentum.
            before = _state(model)
            data, batch_size = make(_views(rng, 1), 4)
            model.fit(data, batch_size=batch_size, epochs=1, verbose=0)
            _assert_same_state(before, _state(model))
    skipped = [w for w in caught if "skipped a batch of a single" in str(w.message)]
    # A compiled TensorFlow step sees batches of any size and skips the batch
    # inside the step, without the warning.
    assert len(skipped) == (0 if BACKEND == "tensorflow" else 1)
