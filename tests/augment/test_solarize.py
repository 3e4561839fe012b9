import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd.augment import Solarize


def test_values_at_or_above_the_threshold_are_inverted():
    images = np.array([0.0, 0.2, 0.49, 0.5, 0.7, 1.0], "float32").reshape(1, 2, 3, 1)
    expected = np.array([0.0, 0.2, 0.49, 0.5, 0.3, 0.0], "float32").reshape(1, 2, 3, 1)
    outputs = keras.ops.convert_to_numpy(Solarize()(images))
    np.testing.assert_allclose(outputs, expected, atol=1e-7)
    dataset = tf.data.Dataset.from_tensors(images * 255).map(
        Solarize(threshold=128, value_range=(0, 255))
    )
    np.testing.assert_allclose(
        next(iter(dataset)).numpy(),
        np.where(images * 255 >= 128, 255 - images * 255, images * 255),
        atol=1e-4,
    )
    outputs = keras.ops.convert_to_numpy(Solarize()(images, training=False))
    np.testing.assert_array_equal(outputs, images)


def test_config_round_trip_and_validation():
    layer = Solarize(threshold=0.4, value_range=(0, 2))
    config = layer.get_config()
    assert config["threshold"] == 0.4 and config["value_range"] == (0.0, 2.0)
    assert Solarize.from_config(config).get_config() == config
    with pytest.raises(TypeError, match="threshold='high'"):
        Solarize(threshold="high")
