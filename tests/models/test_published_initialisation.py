"""The backbones and the projector start as the published PyTorch code does."""

import math

import keras
import numpy as np
import pytest

import keras_imsvd
from keras_imsvd.backbones import NORMALIZATIONS
from keras_imsvd.models import build_projector


def _batch_norms(model):
    return [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def test_batch_norm_settings_are_torch_defaults():
    models = [
        keras_imsvd.backbones.resnet18_cifar(width=4),
        keras_imsvd.backbones.small_convnet(widths=(4, 8)),
        build_projector("16-8"),
    ]
    for model in models:
        norms = _batch_norms(model)
        assert norms
        for layer in norms:
            assert (layer.epsilon, layer.momentum) == (1e-5, 0.9), layer.name


def test_keras_momentum_09_is_torch_momentum_01(rng):
    # One training step of each: torch's running mean is 0.9 * 0 + 0.1 * mean.
    x = rng.normal(2.0, 1.0, (16, 4)).astype("float32")
    mlp = build_projector("4-4")
    mlp.build((None, 4))
    norm = mlp.get_layer("batch_norm_0")
    h = keras.ops.convert_to_numpy(mlp.get_layer("dense_0")(x)).astype("float64")
    norm(h.astype("float32"), training=True)
    expected = 0.1 * h.mean(axis=0)
    np.testing.assert_allclose(norm.moving_mean.numpy(), expected, rtol=1e-5)


def test_projector_dense_starts_as_torch_linear(rng):
    fan_in = 300
    mlp = build_projector("2048-256")
    mlp.build((None, fan_in))
    for layer, inputs in ((mlp.layers[0], fan_in), (mlp.layers[-1], 2048)):
        bound = 1.0 / math.sqrt(inputs)
        kernel = layer.kernel.numpy().astype("float64")
        assert kernel.shape[0] == inputs
        assert np.abs(kernel).max() <= bound
        assert np.abs(kernel).max() > 0.99 * bound
        # uniform(-a, a) has std a / sqrt(3).
        assert abs(kernel.std() / (bound / math.sqrt(3)) - 1) < 0.02
        assert abs(kernel.mean()) < 0.02 * bound
    bias = mlp.layers[0].bias.numpy().astype("float64")
    bound = 1.0 / math.sqrt(fan_in)
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.99 * bound
    assert abs(bias.std() / (bound / math.sqrt(3)) - 1) < 0.06
    assert not mlp.layers[-1].use_bias


def test_keras_initialization_is_glorot_and_zero_bias():
    mlp = build_projector("2048-256", initialization="keras")
    mlp.build((None, 300))
    first = mlp.layers[0]
    assert type(first) is keras.layers.Dense
    assert np.all(first.bias.numpy() == 0)
    # glorot-uniform: std sqrt(2 / (fan_in + fan_out)).
    expected = math.sqrt(2.0 / (300 + 2048))
    assert abs(first.kernel.numpy().std() / expected - 1) < 0.02


def test_explicit_initializers_win():
    layer = keras_imsvd.models.projector.LinearDense(3, bias_initializer="ones")
    layer.build((None, 5))
    assert np.all(layer.bias.numpy() == 1)
    assert layer.get_config()["bias_initializer"]["class_name"] == "Ones"


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"initialization": "glorot"}, ValueError, "initialization='glorot'"),
        ({"batch_norm_epsilon": 0.0}, ValueError, "batch_norm_epsilon=0.0"),
        ({"batch_norm_momentum": 1.0}, ValueError, "batch_norm_momentum=1.0"),
        ({"batch_norm_momentum": "0.9"}, TypeError, "batch_norm_momentum='0.9'"),
    ],
)
def test_projector_bad_arguments(kwargs, error, text):
    with pytest.raises(error, match=text):
        build_projector("8-4", **kwargs)


def test_backbone_bad_arguments():
    with pytest.raises(ValueError, match="batch_norm_epsilon=-1"):
        keras_imsvd.backbones.resnet18_cifar(width=2, batch_norm_epsilon=-1)
    with pytest.raises(TypeError, match="zero_init_residual=1"):
        keras_imsvd.backbones.resnet50(zero_init_residual=1)
    with pytest.raises(ValueError, match="normalization='cifar'"):
        keras_imsvd.backbones.resnet18_cifar(width=2, normalization="cifar")
    with pytest.raises(ValueError, match="normalization="):
        keras_imsvd.backbones.small_convnet(normalization=((0.5,) * 3, (0.2,) * 3))
    with pytest.raises(TypeError, match="normalization=0.5"):
        keras_imsvd.backbones.small_convnet(normalization=0.5)


@pytest.mark.slow
def test_resnet50_v15_layout_and_initialisation():
    model = keras_imsvd.backbones.resnet50(input_shape=(64, 64, 3))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 53 and not any(layer.use_bias for layer in convs)
    # v1.5: the block that halves the resolution does it in the 3x3 conv.
    assert model.get_layer("stage1_block0_conv1").strides == (1, 1)
    assert model.get_layer("stage1_block0_conv2").strides == (2, 2)
    assert model.get_layer("stage1_block0_proj_conv").strides == (2, 2)
    for stage, size in enumerate((16, 8, 4, 2)):
        shape = model.get_layer(f"stage{stage}_block0_add").output.shape
        assert tuple(shape) == (None, size, size, 256 * 2**stage)
    # kaiming-normal, fan-out: std sqrt(2 / (3 * 3 * 512)).
    kernel = model.get_layer("stage3_block1_conv2").kernel.numpy()
    assert abs(kernel.std() / math.sqrt(2 / (9 * 512)) - 1) < 0.01
    assert abs(kernel.mean()) < 0.01 * kernel.std()
    zero = [layer for layer in _batch_norms(model) if layer.name.endswith("_bn3")]
    assert len(zero) == 16 and all(np.all(b.gamma.numpy() == 0) for b in zero)
    others = [b for b in _batch_norms(model) if not b.name.endswith("_bn3")]
    assert all(np.all(b.gamma.numpy() == 1) for b in others)
    assert all((b.epsilon, b.momentum) == (1e-5, 0.9) for b in _batch_norms(model))
    plain = keras_imsvd.backbones.resnet50(
        input_shape=(32, 32, 3), zero_init_residual=False
    )
    assert all(np.all(b.gamma.numpy() == 1) for b in _batch_norms(plain))


def _old_style_model():
    """A model with the settings of keras_imsvd 0.1.0, spelled out."""
    encoder = keras_imsvd.backbones.small_convnet(
        input_shape=(8, 8, 3),
        widths=(4,),
        batch_norm_epsilon=1e-3,
        batch_norm_momentum=0.99,
    )
    projector = build_projector(
        "16-16",
        initialization="keras",
        batch_norm_epsilon=1e-3,
        batch_norm_momentum=0.99,
    )
    return keras_imsvd.IMSVDModel(encoder, projector=projector, bin_size=8)


@pytest.mark.parametrize("old", [True, False])
def test_keras_file_round_trip_keeps_settings(tmp_path, rng, old):
    if old:
        model = _old_style_model()
    else:
        encoder = keras_imsvd.backbones.small_convnet(
            input_shape=(8, 8, 3), widths=(4,), normalization="cifar10"
        )
        model = keras_imsvd.IMSVDModel(encoder, projector="16-16", bin_size=8)
    images = rng.random((4, 8, 8, 3)).astype("float32")
    before = model.discretize(images)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.discretize(images), before, rtol=1e-6)
    dense_type = keras.layers.Dense if old else keras_imsvd.models.projector.LinearDense
    assert type(loaded.projector.layers[0]) is dense_type
    settings = (1e-3, 0.99) if old else (1e-5, 0.9)
    for layer in _batch_norms(loaded):
        assert (layer.epsilon, layer.momentum) == settings
    has_normalization = any(
        isinstance(layer, keras.layers.Normalization) for layer in loaded.encoder.layers
    )
    assert has_normalization is not old


def test_linear_dense_config_without_bias_initializer_is_torch_style():
    # get_config leaves out the fan-in bias, which is rebuilt from the input size.
    config = keras_imsvd.models.projector.LinearDense(64).get_config()
    assert "bias_initializer" not in config
    layer = keras_imsvd.models.projector.LinearDense.from_config(config)
    layer.build((None, 4))
    bias = layer.bias.numpy()
    assert np.abs(bias).max() <= 0.5 and np.abs(bias).max() > 0.25


@pytest.mark.parametrize("name", ["cifar10", "imagenet"])
def test_normalised_encoder_equals_encoder_on_normalised_images(rng, name):
    kwargs = {"input_shape": (8, 8, 3), "width": 4}
    normalised = keras_imsvd.backbones.resnet18_cifar(normalization=name, **kwargs)
    plain = keras_imsvd.backbones.resnet18_cifar(**kwargs)
    plain.set_weights(normalised.get_weights())
    x = rng.random((3, 8, 8, 3))
    mean, std = (np.asarray(v, "float64") for v in NORMALIZATIONS[name])
    expected = plain.predict(((x - mean) / std).astype("float32"), verbose=0)
    model = keras_imsvd.IMSVDModel(normalised, projector="16", bin_size=8)
    for features in (
        normalised.predict(x.astype("float32"), verbose=0),
        model.embed(x.astype("float32")),
    ):
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(plain.predict(x.astype("float32"), verbose=0), expected)


def test_train_py_encoders_carry_the_published_normalisation():
    from keras_imsvd.training.model import build_encoder

    def normalisation(encoder):
        found = [
            layer
            for layer in encoder.layers
            if isinstance(layer, keras.layers.Normalization)
        ]
        return found[0] if found else None

    layer = normalisation(build_encoder("resnet18_cifar", (8, 8, 3)))
    mean, std = NORMALIZATIONS["cifar10"]
    np.testing.assert_allclose(np.ravel(layer.mean), mean, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.ravel(layer.variance)), std, rtol=1e-6)
    assert normalisation(build_encoder("resnet18_cifar", (8, 8, 1))) is None
    assert normalisation(build_encoder("small_convnet", (8, 8, 3))) is None
