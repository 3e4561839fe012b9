import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd.data import evaluation_arrays
from keras_imsvd.data import evaluation_dataset


def test_arrays_become_unit_floats_in_order():
    images = np.arange(10, dtype="uint8").reshape(10, 1, 1, 1) * 20
    labels = np.arange(10)
    x, y = evaluation_arrays((images, labels))
    assert x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x, images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y, labels)
    resized, _ = evaluation_arrays((images, labels), image_size=4)
    assert resized.shape == (10, 4, 4, 1)
    np.testing.assert_allclose(resized[:, 2, 1, 0], images.ravel() / 255.0, atol=1e-6)


def test_dataset_keeps_order_and_the_last_batch():
    images = np.random.default_rng(0).uniform(size=(7, 3, 3, 3)).astype("float32")
    labels = np.arange(7)
    batches = list(evaluation_dataset((images, labels), batch_size=3))
    assert [len(y) for _, y in batches] == [3, 3, 1]
    np.testing.assert_allclose(np.concatenate([x for x, _ in batches]), images)
    source = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    x, y = evaluation_arrays(source)
    np.testing.assert_allclose(x, images)
    np.testing.assert_array_equal(y, labels)


def test_labels_are_required():
    with pytest.raises(ValueError, match="needs labels"):
        evaluation_arrays(np.zeros((4, 2, 2, 1), "float32"))
    with pytest.raises(ValueError, match="batch_size=0"):
        evaluation_dataset((np.zeros((4, 2, 2, 1)), np.zeros(4, int)), batch_size=0)
