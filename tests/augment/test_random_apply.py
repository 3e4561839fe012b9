import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd.augment import ColorJitter
from keras_imsvd.augment import GaussianBlur
from keras_imsvd.augment import RandomApply
from keras_imsvd.augment import RandomResizedCrop
from keras_imsvd.augment import Solarize

IMAGES = np.random.default_rng(0).uniform(size=(4, 6, 6, 3)).astype("float32")
SOLARIZED = np.where(IMAGES >= 0.5, 1.0 - IMAGES, IMAGES)


def _in_tf_data(function, images):
    dataset = tf.data.Dataset.from_tensors(images).map(function)
    return next(iter(dataset)).numpy()


def test_rate_zero_is_the_identity_and_rate_one_always_applies():
    never = keras.ops.convert_to_numpy(RandomApply(Solarize(), rate=0.0)(IMAGES))
    always = keras.ops.convert_to_numpy(RandomApply(Solarize(), rate=1.0)(IMAGES))
    np.testing.assert_array_equal(never, IMAGES)
    np.testing.assert_allclose(always, SOLARIZED, atol=1e-7)


def test_half_rate_applies_to_about_half_of_the_images():
    count = 4000
    images = np.full((count, 2, 2, 1), 0.8, "float32")
    outputs = _in_tf_data(RandomApply(Solarize(), rate=0.5, seed=1), images)
    # Each image is either untouched (0.8) or solarized (0.2), as a whole.
    pixels = outputs.reshape(count, -1)
    applied = np.all(np.isclose(pixels, 0.2), axis=1)
    untouched = np.all(np.isclose(pixels, 0.8), axis=1)
    assert np.all(applied | untouched)
    # Binomial(4000, 0.5): std of the fraction 0.008; bound at 5 std.
    assert abs(applied.mean() - 0.5) < 0.04


def test_single_images_and_inference():
    layer = RandomApply(Solarize(), rate=1.0, seed=0)
    single = tf.data.Dataset.from_tensor_slices(IMAGES).map(layer)
    np.testing.assert_allclose(np.stack(list(single)), SOLARIZED, atol=1e-7)
    outputs = _in_tf_data(lambda x: layer(x, training=False), IMAGES)
    np.testing.assert_array_equal(outputs, IMAGES)


def test_wraps_random_layers_inside_tf_data():
    layer = RandomApply(ColorJitter(seed=0), rate=0.8, seed=2)
    outputs = _in_tf_data(layer, np.repeat(IMAGES[:1], 4, axis=0))
    assert outputs.shape == (4, 6, 6, 3) and outputs.dtype == np.float32
    assert 0.0 <= outputs.min() and outputs.max() <= 1.0


def test_config_round_trip():
    layer = RandomApply(ColorJitter(0.4, 0.4, 0.2, 0.1, seed=5), rate=0.8, seed=3)
    config = layer.get_config()
    assert config["rate"] == 0.8 and config["seed"] == 3
    restored = RandomApply.from_config(config)
    assert isinstance(restored.layer, ColorJitter)
    assert restored.layer.get_config() == layer.layer.get_config()
    assert restored.get_config() == config
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(again, RandomApply) and again.rate == 0.8


def test_invalid_arguments_are_named():
    with pytest.raises(TypeError, match="layer="):
        RandomApply(lambda x: x)
    with pytest.raises(ValueError, match="rate=1.5"):
        RandomApply(Solarize(), rate=1.5)
    with pytest.raises(TypeError, match="rate="):
        RandomApply(Solarize(), rate="often")
    with pytest.raises(ValueError, match="keeps the image shape"):
        RandomApply(RandomResizedCrop(3, 3), rate=0.5)(IMAGES)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_low_rates_transform_only_the_selected_images(rate):
    # Inside tf.data, at rates up to 1/2, the wrapped layer runs on the
    # selected images only (gathered, then scattered back).
    count = 2000
    images = np.full((count, 3, 3, 3), 0.8, "float32")
    images[..., 0] = 0.2  # gray level 0.2989 * 0.2 + 0.701 * 0.8
    layer = RandomApply(keras.layers.RandomGrayscale(factor=1.0, seed=0), rate, seed=4)
    # Under TensorFlow the subset's size is data dependent; elsewhere the
    # subset is taken only inside tf.data, never in a compiled step.
    assert layer.supports_jit == (keras.backend.backend() != "tensorflow")
    outputs = _in_tf_data(layer, images).reshape(count, -1)
    gray = 0.2989 * 0.2 + (0.587 + 0.114) * 0.8
    applied = np.all(np.isclose(outputs, gray, atol=1e-6), axis=1)
    untouched = np.all(outputs == images.reshape(count, -1), axis=1)
    assert np.all(applied ^ untouched)
    # Binomial(2000, rate): std of the fraction at most 0.011; bound at 5 std.
    assert abs(applied.mean() - rate) < 0.056


def test_a_batch_with_no_selected_image_is_returned_unchanged():
    layer = RandomApply(GaussianBlur(kernel_size=3, seed=0), rate=1e-9, seed=0)
    np.testing.assert_array_equal(_in_tf_data(layer, IMAGES), IMAGES)


def test_the_fused_path_selects_whole_images():
    # ColorJitter under RandomApply: one XLA cluster, the jitter skipping the
    # images left out.
    count = 1000
    images = np.random.default_rng(1).uniform(size=(count, 4, 4, 3)).astype("float32")
    layer = RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1, seed=1), rate=0.8, seed=2)
    assert layer.supports_jit
    outputs = _in_tf_data(layer, images).reshape(count, -1)
    untouched = np.all(outputs == images.reshape(count, -1), axis=1)
    # Binomial(1000, 0.2): std of the fraction 0.013; bound at 5 std.
    assert abs(untouched.mean() - 0.2) < 0.065
    changed = outputs[~untouched] - images.reshape(count, -1)[~untouched]
    assert np.all(np.abs(changed).max(axis=1) > 0)
