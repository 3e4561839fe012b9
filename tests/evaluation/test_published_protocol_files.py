"""The published linear evaluation on image files read from disk: the test
transform of the array path, RandomResizedCrop training crops, a frozen
encoder, and unreadable files."""

import numpy as np
import pytest
from PIL import Image

from keras_imsvd.evaluation import _image_batches
from keras_imsvd.evaluation import linear_evaluation
from keras_imsvd.evaluation import protocol_settings
from keras_imsvd.evaluation.published_protocol import _feature_function
from keras_imsvd.evaluation.published_protocol import _test_accuracy
from tests.evaluation.test_published_protocol import _encoder


def _save(path, image):
    Image.fromarray(np.asarray(image, "uint8")).save(path, quality=95)
    return str(path)


def _smooth(height, width, phase):
    """Slow sines (at most ~7 levels per pixel): a one-pixel misplacement of
    the crop shows as several levels."""
    y, x = np.mgrid[0 : 1 : complex(height), 0 : 1 : complex(width)]
    return np.stack(
        [
            128 + 100 * np.sin(3 * x + phase),
            128 + 100 * np.cos(2 * y + x),
            128 + 80 * np.sin(4 * x * y + phase),
        ],
        axis=-1,
    ).astype("uint8")


def _decoded(path):
    import tensorflow as tf

    return tf.io.decode_jpeg(tf.io.read_file(path), channels=3).numpy()


def test_file_test_batches_are_the_array_test_batches(tmp_path):
    # The array path decodes nothing: give it the same decoder's output.
    # Square 36 x 36: both resizes to 36 are the identity, so only the centre
    # crop acts, and the pixels must agree exactly. Upscaled (20 x 28 -> 36):
    # antialiasing does nothing and the files are rounded to 8 bits, so they
    # agree within 0.5 level (0.6 with float error). Downscaled (40 x 48,
    # 48 x 40, 60 x 44 -> 36): the file path also antialiases (a kernel 1.1-1.2x
    # wider); on these smooth images that moves a pixel by at most 2 levels,
    # while a crop one pixel off moves it by up to 7.
    sizes = [(36, 36), (20, 28), (40, 48), (48, 40), (60, 44)]
    files = [
        _save(tmp_path / f"{i}.jpg", _smooth(h, w, i)) for i, (h, w) in enumerate(sizes)
    ]
    labels = np.arange(len(files))
    settings = protocol_settings("cifar10", image_size=32)
    resize = settings["test_resize"]
    assert resize == 36
    batches = list(
        _image_batches.file_test_batches(
            files, labels, 4, 32, resize
        ).as_numpy_iterator()
    )
    assert [b[0].shape for b in batches] == [(4, 32, 32, 3)] * 2
    # The last batch is padded with its last image, labelled -1.
    np.testing.assert_array_equal(
        np.concatenate([b[1] for b in batches]), [0, 1, 2, 3, 4, -1, -1, -1]
    )
    np.testing.assert_array_equal(batches[1][0][1], batches[1][0][0])
    images = np.concatenate([b[0] for b in batches])
    bounds = [0.0, 0.6, 2.0, 2.0, 2.0]
    for index, (file, bound) in enumerate(zip(files, bounds)):
        array = _decoded(file)[None]
        expected = next(
            _image_batches.test_batches(
                array, labels[index : index + 1], 1, 32, resize
            ).as_numpy_iterator()
        )[0][0]
        difference = np.abs(images[index] - expected) * 255.0
        assert difference.max() <= bound + 1e-3, (sizes[index], difference.max())
        assert images[index].min() >= 0.0 and images[index].max() <= 1.0


def _ramps(tmp_path, count, size=64):
    """Red rises left to right, green top to bottom; blue is the file's label
    (times 20), which every crop keeps."""
    y, x = np.mgrid[0:size, 0:size]
    files = []
    for label in range(count):
        image = np.stack(
            [x * 255 / (size - 1), y * 255 / (size - 1), np.full_like(x, 20 * label)],
            axis=-1,
        )
        files.append(_save(tmp_path / f"{label}.jpg", image))
    return files, np.arange(count)


def _extent(crops, axis):
    """The fraction of the image's side that each crop spans along `axis`, read
    from the ramp across the crop's middle line."""
    middle = crops.shape[1] // 2
    if axis == "width":
        line = crops[:, middle, :, 0]
    else:
        line = crops[:, :, middle, 1]
    return np.abs(line[:, -1] - line[:, 0])


def test_file_training_batches_are_random_resized_crops_of_each_file(tmp_path):
    from keras_imsvd import augment

    files, labels = _ramps(tmp_path, 11)
    crop = augment.RandomResizedCrop(
        16, 16, scale=(0.08, 1.0), horizontal_flip=True, seed=3
    )
    stream, batches = _image_batches.file_training_batches(
        files, labels, 4, crop, seed=3
    )
    epochs = [list(batches(epoch).as_numpy_iterator()) for epoch in range(4)]
    crops, orders = [], []
    for epoch in epochs:
        assert len(epoch) == 2  # 11 // 4 full batches, the rest dropped
        order = np.concatenate([y for _, y in epoch])
        # Eight distinct files of the eleven, each once.
        assert len(set(order.tolist())) == 8 and set(order) <= set(labels)
        orders.append(order.tolist())
        for x, y in epoch:
            assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32
            assert y.dtype == np.int32
            # Each crop comes from the file its label names.
            np.testing.assert_allclose(
                x[..., 2].mean(axis=(1, 2)), 20 * y / 255, atol=3 / 255
            )
            crops.append(x)
    assert len({tuple(o) for o in orders}) == 4  # a new order every epoch
    crops = np.concatenate(crops)
    width, height = _extent(crops, "width"), _extent(crops, "height")
    # Scale 0.08-1 and ratio 3/4-4/3: a side spans sqrt(0.06) = 0.24 to 1 of
    # the image (less a sample's width at each end after resizing).
    for extent in (width, height):
        assert extent.min() >= 0.2 and extent.max() <= 1.0
        assert extent.min() < 0.5 and extent.max() > 0.85
    # Mirrored crops run the red ramp right to left.
    rising = crops[:, 8, -1, 0] > crops[:, 8, 0, 0]
    assert 0 < rising.sum() < len(rising)
    assert stream.skipped == 0


_COLOURS = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40]])


def _colour_files(tmp_path, name, per_class, seed):
    """A patch of the class colour on dark noise, of random sizes."""
    rng = np.random.default_rng(seed)
    (tmp_path / name).mkdir()
    files, labels = [], []
    for label, colour in enumerate(_COLOURS):
        for index in range(per_class):
            height, width = rng.integers(20, 40, size=2)
            image = rng.integers(0, 40, (height, width, 3))
            image[2:-2, 2:-2] = colour
            files.append(_save(tmp_path / name / f"{label}_{index}.jpg", image))
            labels.append(label)
    return files, np.array(labels)


def test_files_train_a_classifier_on_a_frozen_encoder(tmp_path):
    train = _colour_files(tmp_path, "train", 6, seed=0)
    test = _colour_files(tmp_path, "test", 3, seed=1)
    encoder = _encoder()
    before = [w.copy() for w in encoder.get_weights()]
    result = linear_evaluation(
        encoder,
        train,
        (tuple(test[0]), test[1]),  # a tuple of paths is files too
        protocol="cifar10",
        epochs=4,
        batch_size=8,
        image_size=16,
        verbose=2,
    )
    after = encoder.get_weights()
    assert len(after) == len(before) == 4
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)  # BN statistics included
    assert result["top1"] >= 0.9 and result["top5"] is None
    assert result["skipped_files"] == {"train": 0, "test": 0}
    assert result["settings"]["batch_size"] == 8
    assert len(result["history"]["loss"]) == 4
    # The same classifier on the array path's test batches of the same
    # decoded images scores the same.
    features = _feature_function(encoder)
    right = 0
    for file, label in zip(*test):
        batches = _image_batches.test_batches(
            _decoded(file)[None], label[None], 1, 16, 18
        )
        right += _test_accuracy(result["model"], features, batches, 4)[0]
    assert right / len(test[0]) == result["top1"]


def test_unreadable_files_are_skipped_and_counted(tmp_path, capsys):
    train = _colour_files(tmp_path, "train", 3, seed=2)  # 12 files
    test = _colour_files(tmp_path, "test", 2, seed=3)  # 8 files
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    # 13 files in batches of 4: three full batches need all 12 good files, so
    # every epoch reads the bad one.
    result = linear_evaluation(
        lambda x: np.asarray(x).mean(axis=(1, 2)),
        ([*train[0], bad], [*train[1], 0]),
        ([bad, *test[0]], [1, *test[1]]),
        protocol="imagenet",
        epochs=2,
        batch_size=4,
        image_size=16,
        verbose=2,
    )
    assert result["skipped_files"] == {"train": 1, "test": 1}
    assert "skipped: 1 training (most in one epoch), 1 test" in capsys.readouterr().out
    assert 0.0 <= result["top1"] <= 1.0 and np.isfinite(result["history"]["loss"]).all()
    # Eight test images: the accuracy is a multiple of 1/8.
    assert result["top1"] * 8 == pytest.approx(round(result["top1"] * 8))
    with pytest.raises(ValueError, match="test_data holds no readable image"):
        linear_evaluation(
            lambda x: np.asarray(x).mean(axis=(1, 2)),
            train,
            ([bad], [0]),
            epochs=1,
            image_size=16,
        )
    with pytest.raises(TypeError, match="train_data files"):
        linear_evaluation(
            lambda x: x, ([train[0][0], 3], [0, 1]), test, epochs=1, image_size=16
        )
    with pytest.raises(ValueError, match="train_data labels"):
        linear_evaluation(lambda x: x, (train[0], [0]), test, epochs=1, image_size=16)


def _records(path, files, labels):
    """The JPEG bytes of `files` as `tf.train.Example`s, under the keys of
    the ImageNet TFRecords."""
    import tensorflow as tf

    from keras_imsvd.data import TFRecordImages

    with tf.io.TFRecordWriter(str(path)) as writer:
        for file, label in zip(files, labels):
            with open(file, "rb") as f:
                encoded = f.read()
            feature = {
                "image/encoded": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[encoded])
                ),
                "image/class/label": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(label)])
                ),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())
    return TFRecordImages(str(path))


def test_tfrecords_are_read_as_the_files_they_hold(tmp_path):
    train = _colour_files(tmp_path, "train", 4, seed=4)
    test = _colour_files(tmp_path, "test", 2, seed=5)
    train_records = _records(tmp_path / "train.tfrecord", *train)
    test_records = _records(tmp_path / "test.tfrecord", *test)
    # The same bytes: the test batches agree bit for bit.
    from_records, from_files = (
        list(_image_batches.file_test_batches(x, y, 5, 16, 18).as_numpy_iterator())
        for x, y in ((test_records, None), test)
    )
    assert len(from_records) == len(from_files) == 2
    for (x1, y1), (x2, y2) in zip(from_records, from_files):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    encoder = _encoder()
    before = [w.copy() for w in encoder.get_weights()]
    result = linear_evaluation(
        encoder,
        (train_records, None),  # labels read from the records
        (test_records, test[1]),
        protocol="cifar10",
        epochs=2,
        batch_size=8,
        image_size=16,
    )
    for old, new in zip(before, encoder.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert result["skipped_files"] == {"train": 0, "test": 0}
    features = _feature_function(encoder)
    batches = _image_batches.file_test_batches(*test, 8, 16, 18)
    top1, _, total = _test_accuracy(result["model"], features, batches, 4)
    assert total == 8 and top1 == result["top1"]
    with pytest.raises(ValueError, match="train_data labels"):
        linear_evaluation(
            encoder, (train_records, train[1][:3]), test, epochs=1, image_size=16
        )
