import keras
import numpy as np
import tensorflow as tf

from keras_imsvd.augment import RandomFlip
from keras_imsvd.augment import RandomGrayscale

IMAGES = np.random.default_rng(0).uniform(size=(64, 5, 6, 3)).astype("float32")


def _in_tf_data(function, images):
    dataset = tf.data.Dataset.from_tensors(images).map(function)
    return next(iter(dataset)).numpy()


def test_flip_matches_keras_draw_for_draw():
    ours = _in_tf_data(RandomFlip("horizontal", seed=7), IMAGES)
    theirs = _in_tf_data(keras.layers.RandomFlip("horizontal", seed=7), IMAGES)
    np.testing.assert_array_equal(ours, theirs)
    flipped = np.all(ours == IMAGES[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(ours == IMAGES, axis=(1, 2, 3))
    assert np.all(flipped ^ kept) and 10 < flipped.sum() < 54


def test_grayscale_matches_keras_draw_for_draw():
    ours = _in_tf_data(RandomGrayscale(factor=0.5, seed=3), IMAGES)
    theirs = _in_tf_data(keras.layers.RandomGrayscale(factor=0.5, seed=3), IMAGES)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    gray = np.all(np.isclose(ours[..., 0], ours[..., 2], atol=1e-6), axis=(1, 2))
    assert 10 < gray.sum() < 54


def test_eager_calls_inference_and_config():
    flip = RandomFlip("horizontal_and_vertical", seed=1)
    out = keras.ops.convert_to_numpy(flip(IMAGES))
    assert out.shape == IMAGES.shape
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(flip(IMAGES, training=False)), IMAGES
    )
    for layer in (flip, RandomGrayscale(factor=0.2, seed=2)):
        again = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(layer)
        )
        assert type(again) is type(layer)
        assert again.get_config() == layer.get_config()
