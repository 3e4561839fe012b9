"""extract_features on callables, Keras models and models with `embed`."""

import keras
import numpy as np
import pytest

from keras_imsvd.evaluation import extract_features


def test_callable_is_batched_and_converted():
    images = np.arange(2 * 3 * 3 * 1, dtype="float32").reshape(2, 3, 3, 1)
    images = np.concatenate([images] * 5)  # (10, 3, 3, 1)
    seen = []

    def fn(batch):
        seen.append(len(batch))
        return keras.ops.convert_to_tensor(batch * 2.0)

    features = extract_features(fn, images, batch_size=4, verbose=1)
    assert seen == [4, 4, 2]
    assert isinstance(features, np.ndarray)
    np.testing.assert_allclose(features, 2.0 * images.reshape(10, 9))


def test_keras_model_uses_predict():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(7, 4)).astype("float32")
    features = extract_features(model, x, batch_size=3)
    np.testing.assert_allclose(
        features, keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-6
    )


def test_embed_is_preferred():
    class WithEmbed:
        def embed(self, images, batch_size=256, verbose=0):
            return np.ones((len(images), 5)) * batch_size

        def predict(self, images, **kwargs):
            raise AssertionError("predict must not be called")

    features = extract_features(WithEmbed(), np.zeros((3, 2)), batch_size=8)
    np.testing.assert_array_equal(features, np.full((3, 5), 8.0))


def test_bad_arguments():
    with pytest.raises(TypeError, match="encoder_or_fn"):
        extract_features(42, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(lambda x: x, np.zeros((3, 2)), batch_size=0)
    with pytest.raises(ValueError, match="fn"):
        extract_features(lambda x: x[:, 0], np.zeros((3, 2)))
