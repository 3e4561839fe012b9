import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd.augment import GaussianBlur
from keras_imsvd.augment import default_kernel_size

IMAGES = np.random.default_rng(0).uniform(size=(3, 16, 12, 2)).astype("float32")


def _in_tf_data(function, images):
    dataset = tf.data.Dataset.from_tensors(images).map(function)
    return next(iter(dataset)).numpy()


def _reference_blur(image, sigma, kernel_size):
    """Float64 separable Gaussian blur with reflect padding (torchvision)."""
    radius = kernel_size // 2
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(
        image.astype("float64"), ((radius,) * 2, (radius,) * 2, (0, 0)), "reflect"
    )
    height, width = image.shape[:2]
    rows = sum(k * padded[t : t + height] for t, k in enumerate(kernel))
    return sum(k * rows[:, t : t + width] for t, k in enumerate(kernel))


def test_matches_a_float64_reference():
    layer = GaussianBlur(kernel_size=7)
    sigma = np.array([0.1, 0.8, 2.0], "float32")
    outputs = keras.ops.convert_to_numpy(
        layer.transform_images(IMAGES, {"sigma": sigma})
    )
    for image, s, output in zip(IMAGES, sigma, outputs):
        np.testing.assert_allclose(output, _reference_blur(image, s, 7), atol=1e-5)


def test_sigma_is_drawn_per_image_in_its_range():
    # The blurred centre of a delta image is the kernel; its spread is sigma.
    count, size = 200, 31
    delta = np.zeros((count, size, size, 1), "float32")
    delta[:, size // 2, size // 2] = 1.0
    outputs = _in_tf_data(GaussianBlur(kernel_size=23, seed=0), delta)
    profile = outputs[:, :, size // 2, 0]  # (count, size), a scaled 1-D kernel
    profile /= profile.sum(axis=1, keepdims=True)
    offsets = np.arange(size) - size // 2
    sigma = np.sqrt((profile * offsets**2).sum(axis=1))
    # sigma ~ U(0.1, 2): a kernel of sigma 0.1 is a delta (discrete spread ~0).
    assert sigma.max() <= 2.0 + 1e-3 and sigma.max() > 1.9
    assert sigma.min() < 0.4
    assert 0.9 < np.median(sigma) < 1.25
    assert len(np.unique(np.round(sigma, 4))) > 190


def test_constant_images_stay_constant_and_inference_is_the_identity():
    flat = np.full((2, 16, 12, 2), 0.3, "float32")
    np.testing.assert_allclose(_in_tf_data(GaussianBlur(seed=0), flat), flat, atol=1e-6)
    layer = GaussianBlur(seed=0)
    outputs = _in_tf_data(lambda x: layer(x, training=False), IMAGES)
    np.testing.assert_array_equal(outputs, IMAGES)


def test_default_kernel_size_is_ten_percent_and_odd():
    assert [default_kernel_size(s) for s in (224, 96, 32, 16)] == [23, 9, 3, 3]
    # Kernel 3 from height 16: a sigma of 0.1 leaves the image as it is.
    blurred = _in_tf_data(GaussianBlur(sigma=(0.1, 0.1)), IMAGES)
    np.testing.assert_allclose(blurred, IMAGES, atol=1e-6)


def test_config_round_trip():
    layer = GaussianBlur(kernel_size=5, sigma=(0.5, 1.5), seed=3)
    config = layer.get_config()
    assert config["kernel_size"] == 5 and config["sigma"] == (0.5, 1.5)
    assert config["seed"] == 3
    assert GaussianBlur.from_config(config).get_config() == config


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kernel_size": 4}, ValueError, "kernel_size=4"),
        ({"kernel_size": 0}, ValueError, "kernel_size=0"),
        ({"kernel_size": 2.5}, TypeError, "kernel_size=2.5"),
        ({"sigma": (0.0, 1.0)}, ValueError, "sigma"),
        ({"sigma": (2.0, 1.0)}, ValueError, "sigma"),
    ],
)
def test_invalid_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        GaussianBlur(**kwargs)


def test_kernel_larger_than_the_image_is_refused():
    with pytest.raises(ValueError, match="kernel_size=33"):
        GaussianBlur(kernel_size=33, seed=0)(IMAGES)


def test_tf_data_batches_match_the_reference():
    # A static batch size compiles the fold into (1, H, W, N C) with XLA.
    layer = GaussianBlur(kernel_size=5, seed=3)
    sigma = keras.ops.convert_to_numpy(layer.get_random_transformation(IMAGES)["sigma"])
    dataset = tf.data.Dataset.from_tensors(IMAGES).map(
        lambda x: tf.ensure_shape(x, IMAGES.shape)
    )

    def blur(x):
        layer.backend.set_backend("tensorflow")
        try:
            return layer.transform_images(x, {"sigma": tf.constant(sigma)})
        finally:
            layer.backend.reset()

    outputs = next(iter(dataset.map(blur))).numpy()
    for image, s, output in zip(IMAGES, sigma, outputs):
        np.testing.assert_allclose(output, _reference_blur(image, s, 5), atol=1e-5)
