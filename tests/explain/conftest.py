"""Shared fixtures of the explain tests: a tiny real IMSVDModel and images."""

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_imsvd  # noqa: E402

IMAGE_SHAPE = (8, 8, 1)
BIN_SIZE = 8
NUM_VARIABLES = 4  # projector "32" / bin_size 8


@pytest.fixture(scope="session")
def tiny_model():
    """A small, built, untrained model; temperature 0.1 gives sharp codes."""
    keras.utils.set_random_seed(0)
    encoder = keras_imsvd.backbones.small_convnet(input_shape=IMAGE_SHAPE, widths=(8,))
    model = keras_imsvd.IMSVDModel(
        encoder, projector="32", bin_size=BIN_SIZE, temperature=0.1
    )
    model.build((None, *IMAGE_SHAPE))
    return model


@pytest.fixture(scope="session")
def images():
    """40 random images in [0, 1], `(40, 8, 8, 1)` float32."""
    return np.random.default_rng(0).random((40, *IMAGE_SHAPE)).astype("float32")


@pytest.fixture(scope="session")
def labels():
    return np.arange(40) % 3
