"""extract_features gives models only full batches and float32 features."""

import keras
import numpy as np

from keras_imsvd.evaluation import extract_features


class _Recorder:
    """A `predict`-like method that records the batch sizes it is given."""

    def __init__(self, dtype="float32"):
        self.sizes = []
        self.dtype = dtype

    def predict(self, images, batch_size, verbose=0):
        out = []
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            self.sizes.append(len(batch))
            # Features: the sum of each image and its first pixel.
            flat = batch.reshape(len(batch), -1)
            out.append(np.stack([flat.sum(1), flat[:, 0]], axis=1))
        return np.concatenate(out).astype(self.dtype)


def test_last_batch_is_padded_and_its_padding_dropped(rng):
    images = rng.normal(size=(300, 4, 4, 1)).astype("float32")
    model = _Recorder()
    features = extract_features(model, images, batch_size=128)
    assert model.sizes == [128, 128, 128]
    flat = images.reshape(300, -1)
    expected = np.stack([flat.sum(1), flat[:, 0]], axis=1)
    np.testing.assert_allclose(features, expected, rtol=1e-6)
    small = _Recorder()
    np.testing.assert_allclose(
        extract_features(small, images[:5], batch_size=128), expected[:5], rtol=1e-6
    )
    assert small.sizes == [128]


def test_half_precision_features_come_back_as_float32(rng):
    images = rng.normal(size=(10, 3)).astype("float32")
    for dtype in ("float16", "bfloat16"):
        features = extract_features(_Recorder(dtype), images, batch_size=4)
        assert features.dtype == np.float32


def test_a_keras_model_gives_the_same_features_padded_or_not(rng):
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    images = rng.normal(size=(70, 6)).astype("float32")
    direct = keras.ops.convert_to_numpy(model(images))
    np.testing.assert_allclose(
        extract_features(model, images, batch_size=32), direct, rtol=1e-5, atol=1e-6
    )
