import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd.augment import RandomResizedCrop
from keras_imsvd.data import multiview_dataset
from keras_imsvd.data import tfds_dataset


def _identity(images):
    return images


IDENTITY = (_identity, _identity)


def _labelled_images(count=20, size=4, channels=1):
    """uint8 images whose every pixel is 10 * label, labels 0-9."""
    labels = np.arange(count) % 10
    images = np.broadcast_to(
        (10 * labels).astype("uint8")[:, None, None, None],
        (count, size, size, channels),
    ).copy()
    return images, labels


def _batches(dataset):
    return [tf.nest.map_structure(lambda x: x.numpy(), b) for b in dataset]


def test_arrays_give_two_float_views_in_unit_range():
    images, labels = _labelled_images()
    dataset = multiview_dataset(images, IDENTITY, batch_size=8, shuffle=False)
    spec = dataset.element_spec
    assert set(spec) == {"view_1", "view_2"}
    assert spec["view_1"].shape.as_list() == [8, 4, 4, 1]
    assert spec["view_1"].dtype == tf.float32
    batches = _batches(dataset)
    assert len(batches) == 2  # 20 // 8, the remainder dropped
    np.testing.assert_allclose(batches[0]["view_1"], images[:8] / 255.0, atol=1e-7)


def test_labels_stay_with_their_images():
    images, labels = _labelled_images(40)
    dataset = multiview_dataset(
        (images, labels), IDENTITY, batch_size=8, labels=True, seed=0
    )
    assert dataset.element_spec[1].dtype == tf.int32
    seen = []
    for views, batch_labels in _batches(dataset):
        np.testing.assert_allclose(
            views["view_2"][:, 0, 0, 0], 10 * batch_labels / 255.0, atol=1e-7
        )
        seen.extend(batch_labels)
    assert sorted(seen) == sorted(labels)


def test_shuffling_is_seeded_and_changes_every_epoch():
    images = np.arange(40, dtype="uint8").reshape(40, 1, 1, 1)

    def order(dataset):
        return np.concatenate([b["view_1"].ravel() for b in _batches(dataset)])

    first = multiview_dataset(images, IDENTITY, batch_size=10, seed=3)
    again = multiview_dataset(images, IDENTITY, batch_size=10, seed=3)
    epoch_1, epoch_2 = order(first), order(first)
    np.testing.assert_array_equal(epoch_1, order(again))
    assert not np.array_equal(epoch_1, epoch_2)
    np.testing.assert_allclose(np.sort(epoch_1), np.sort(epoch_2))
    np.testing.assert_allclose(np.sort(epoch_1), images.ravel() / 255.0, atol=1e-7)
    unshuffled = multiview_dataset(images, IDENTITY, batch_size=10, shuffle=False)
    np.testing.assert_allclose(order(unshuffled), images.ravel() / 255.0, atol=1e-7)


def test_remainder_and_batch_size_checks():
    images = np.zeros((10, 2, 2, 1), "float32")
    kept = multiview_dataset(images, IDENTITY, batch_size=4, drop_remainder=False)
    assert [len(b["view_1"]) for b in _batches(kept)] == [4, 4, 2]
    with pytest.raises(ValueError, match="batch_size=16"):
        multiview_dataset(images, IDENTITY, batch_size=16)
    with pytest.raises(ValueError, match="batch_size=0"):
        multiview_dataset(images, IDENTITY, batch_size=0)
    with pytest.raises(ValueError, match="labels=True"):
        multiview_dataset(images, IDENTITY, batch_size=4, labels=True)


def test_invalid_images_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        multiview_dataset(np.full((8, 2, 2, 1), 255.0), IDENTITY, batch_size=4)
    with pytest.raises(TypeError, match="int64"):
        multiview_dataset(np.zeros((8, 2, 2, 1), "int64"), IDENTITY, batch_size=4)
    with pytest.raises(ValueError, match="images.shape"):
        multiview_dataset(np.zeros((8, 2)), IDENTITY, batch_size=4)
    with pytest.raises(ValueError, match="labels.shape"):
        multiview_dataset((np.zeros((8, 2, 2)), np.zeros(7, int)), IDENTITY, 4)
    with pytest.raises(TypeError, match="source"):
        multiview_dataset(42, IDENTITY, batch_size=4)


def test_views_must_be_pipelines_not_models():
    images = np.zeros((8, 4, 4, 1), "float32")
    sequential = keras.Sequential([keras.layers.RandomFlip()])
    with pytest.raises(TypeError, match="Pipeline"):
        multiview_dataset(images, sequential, batch_size=4)
    with pytest.raises(ValueError, match="pair"):
        multiview_dataset(images, (_identity,) * 3, batch_size=4)
    with pytest.raises(TypeError, match="views"):
        multiview_dataset(images, "cifar", batch_size=4)


@pytest.mark.parametrize("structure", ["tuple", "dict", "images", "batched"])
def test_tf_data_sources(structure):
    images, labels = _labelled_images(12, size=6)
    if structure == "tuple":
        source = tf.data.Dataset.from_tensor_slices((images, labels))
    elif structure == "dict":
        source = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    elif structure == "images":
        source = tf.data.Dataset.from_tensor_slices(images)
    else:
        source = tf.data.Dataset.from_tensor_slices((images, labels)).batch(5)
    with_labels = structure != "images"
    dataset = multiview_dataset(
        source, IDENTITY, batch_size=4, labels=with_labels, image_size=3, seed=0
    )
    batches = _batches(dataset)
    assert len(batches) == 3
    views = batches[0][0] if with_labels else batches[0]
    assert views["view_1"].shape == (4, 3, 3, 1)
    if with_labels:
        for views, batch_labels in batches:
            np.testing.assert_allclose(
                views["view_1"][:, 1, 1, 0], 10 * batch_labels / 255.0, atol=1e-6
            )


def test_default_views_are_random_per_image():
    images = np.repeat(np.random.default_rng(0).uniform(size=(1, 8, 8, 1)), 8, 0)
    dataset = multiview_dataset(images.astype("float32"), batch_size=8, seed=0)
    (batch,) = _batches(dataset)
    assert batch["view_1"].shape == (8, 16, 16, 1)  # digits views
    assert not np.allclose(batch["view_1"][0], batch["view_1"][1])
    assert not np.allclose(batch["view_1"], batch["view_2"])


def test_views_resize_arrays_and_feed_fit():
    images = np.random.default_rng(1).uniform(size=(32, 12, 12, 3)).astype("float32")
    labels = np.arange(32) % 2
    crop = RandomResizedCrop(8, 8, scale=(0.5, 1.0), seed=0)
    dataset = multiview_dataset(
        (images, labels), (crop, crop), batch_size=16, labels=True, image_size=10
    )
    assert dataset.element_spec[0]["view_2"].shape.as_list() == [16, 8, 8, 3]
    view_1 = keras.Input((8, 8, 3), name="view_1")
    view_2 = keras.Input((8, 8, 3), name="view_2")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([view_1, view_2]))
    model = keras.Model(
        {"view_1": view_1, "view_2": view_2}, keras.layers.Dense(2)(pooled)
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


def test_tfds_source_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=20):
        pairs = tfds_dataset("cifar10", split="train")
        image, label = next(iter(pairs))
        assert image.dtype == tf.uint8 and image.shape == (32, 32, 3)
        assert label.dtype == tf.int32
        dataset = multiview_dataset(
            "cifar10", IDENTITY, batch_size=8, labels=True, seed=0
        )
        batches = _batches(dataset)
    assert len(batches) == 2
    views, batch_labels = batches[0]
    assert views["view_1"].shape == (8, 32, 32, 3)
    assert views["view_1"].dtype == np.float32 and views["view_1"].max() <= 1.0
    assert batch_labels.dtype == np.int32 and batch_labels.max() < 10


def test_missing_tensorflow_datasets_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match="pip install tensorflow-datasets"):
        multiview_dataset("cifar10", batch_size=8)
