import numpy as np
import pytest

import keras_imsvd
from keras_imsvd.models import build_projector
from keras_imsvd.models import parse_projector_spec


def test_parse_spec():
    assert parse_projector_spec("8192-8160") == [8192, 8160]
    assert parse_projector_spec([64, 32]) == [64, 32]
    for bad in ("1024-x", "", "64--32", "0-16"):
        with pytest.raises(ValueError, match="projector="):
            parse_projector_spec(bad)
    with pytest.raises(TypeError, match="projector=3.5"):
        parse_projector_spec(3.5)


def test_projector_layout_as_published():
    mlp = build_projector("64-48-32")
    kinds = [type(layer).__name__ for layer in mlp.layers]
    assert kinds == [
        "LinearDense",
        "SyncBatchNormalization",
        "ReLU",
        "LinearDense",
        "SyncBatchNormalization",
        "ReLU",
        "LinearDense",
    ]
    assert mlp.layers[-1].use_bias is False
    out = mlp(np.zeros((2, 10), "float32"))
    assert tuple(out.shape) == (2, 32)


def test_backbones_feature_sizes(rng):
    images = rng.random((2, 32, 32, 3)).astype("float32")
    resnet = keras_imsvd.backbones.resnet18_cifar()
    assert resnet.output_shape == (None, 512)
    assert resnet.predict(images, verbose=0).shape == (2, 512)
    # CIFAR stem: one 3x3 stride-1 convolution and no max-pooling.
    assert resnet.get_layer("stem_conv").strides == (1, 1)
    assert resnet.get_layer("stem_conv").kernel_size == (3, 3)
    assert not any("MaxPooling" in type(layer).__name__ for layer in resnet.layers)
    # 11M parameters, as for the usual CIFAR ResNet-18 without its classifier.
    assert 11.0e6 < resnet.count_params() < 11.3e6
    small = keras_imsvd.backbones.small_convnet()
    assert small.output_shape == (None, 128)


@pytest.mark.slow
def test_resnet50_is_pooled_2048():
    model = keras_imsvd.backbones.resnet50(input_shape=(64, 64, 3))
    assert model.output_shape == (None, 2048)
    # torchvision's resnet50 (25,557,032) less its 2048 x 1000 + 1000 classifier.
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == 23_508_032
    imsvd = keras_imsvd.IMSVDModel(model, projector="64-160", bin_size=80)
    imsvd.build((None, 64, 64, 3))
    assert imsvd.num_variables == 2


def test_backbone_bad_shape():
    with pytest.raises(ValueError, match="input_shape=\\(32, 32\\)"):
        keras_imsvd.backbones.small_convnet(input_shape=(32, 32))


def test_backbones_have_one_public_path():
    for name in ("resnet18_cifar", "resnet50", "small_convnet"):
        assert (
            getattr(keras_imsvd.backbones, name).__module__ == "keras_imsvd.backbones"
        )
        assert not hasattr(keras_imsvd.models, name)
