import numpy as np
import pytest

from keras_imsvd.data import load_digits
from keras_imsvd.data import load_digits_split
from keras_imsvd.data import train_validation_split


def _rows(images):
    return sorted(map(bytes, images.reshape(len(images), -1)))


def test_load_digits_is_float32_in_unit_range():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    # The 17 grey levels 0-16 become multiples of 1/16.
    np.testing.assert_allclose(images * 16, np.round(images * 16), atol=1e-6)
    assert labels.dtype == np.int32 and labels.shape == (1797,)
    assert np.bincount(labels).tolist() == [
        178,
        182,
        177,
        183,
        181,
        182,
        181,
        179,
        174,
        180,
    ]
    larger, _ = load_digits(image_size=16)
    assert larger.shape == (1797, 16, 16, 1)
    assert larger.min() >= 0.0 and larger.max() <= 1.0


def test_digits_split_is_1400_397_stratified_and_seeded():
    (x_train, y_train), (x_test, y_test) = load_digits_split()
    assert (len(x_train), len(x_test)) == (1400, 397)
    assert x_train.shape[1:] == (8, 8, 1) and y_test.dtype == np.int32
    # Every class keeps its share: 397 / 1797 of 174-183 images is 38-40.
    assert np.all((np.bincount(y_test) >= 38) & (np.bincount(y_test) <= 41))
    # Together the parts are the whole set, with labels kept beside images.
    images, labels = load_digits()
    assert _rows(np.concatenate([x_train, x_test])) == _rows(images)
    assert (
        np.bincount(np.concatenate([y_train, y_test])).tolist()
        == np.bincount(labels).tolist()
    )
    (again, _), _ = load_digits_split(seed=0)
    (other, _), _ = load_digits_split(seed=1)
    np.testing.assert_array_equal(again, x_train)
    assert not np.array_equal(other, x_train)


def test_train_validation_split_by_fraction_and_count():
    images = np.arange(200, dtype="float32").reshape(200, 1, 1, 1)
    labels = np.arange(200) % 4
    (x, y), (x_val, y_val) = train_validation_split(images, labels, 0.25, seed=0)
    assert (len(x), len(x_val)) == (150, 50)
    assert sorted(np.bincount(y_val)) == [12, 12, 13, 13]  # stratified
    # Labels stay with their images: image i has label i % 4.
    np.testing.assert_array_equal(x_val.ravel().astype(int) % 4, y_val)
    np.testing.assert_array_equal(x.ravel().astype(int) % 4, y)
    (x, _), (x_val, _) = train_validation_split(images, labels, 20)
    assert (len(x), len(x_val)) == (180, 20)
    (x, _), (x_val, _) = train_validation_split(images, labels, 0)
    assert (len(x), len(x_val)) == (200, 0)


@pytest.mark.parametrize(
    "split, error, match",
    [
        (1.0, ValueError, "validation_split=1.0"),
        (-1, ValueError, "validation_split=-1"),
        (200, ValueError, "validation_split=200"),
        ("10%", TypeError, "validation_split='10%'"),
    ],
)
def test_invalid_splits_are_named(split, error, match):
    images = np.zeros((200, 1, 1, 1), "float32")
    with pytest.raises(error, match=match):
        train_validation_split(images, np.zeros(200, int), split)


def test_digits_split_names_test_size():
    with pytest.raises(ValueError, match="test_size=2000"):
        load_digits_split(test_size=2000)
