"""Streaming from TFRecord files and TFDS splits; equal epochs across shards."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_imsvd.augment import RandomResizedCrop
from keras_imsvd.data import StreamingViews
from keras_imsvd.data import TFRecordImages
from keras_imsvd.data import streaming_images
from keras_imsvd.data import tfds_records

SIZE = 16


def _jpeg(seed, height=40, width=52):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _example(image_key, encoded, label_key=None, label=None):
    feature = {
        image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))
    }
    if label_key is not None:
        feature[label_key] = tf.train.Feature(
            int64_list=tf.train.Int64List(value=[label])
        )
    return tf.train.Example(features=tf.train.Features(feature=feature))


@pytest.fixture
def imagenet_records(tmp_path):
    """37 JPEGs in 4 TFRecord files with the ImageNet keys; the label of
    image i is i + 1 (ImageNet's are 1-based), so labels name the images."""
    encoded = [_jpeg(i) for i in range(37)]
    paths = []
    for shard in range(4):
        path = tmp_path / f"train-{shard:05d}-of-00004"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for i in range(shard, 37, 4):
                writer.write(
                    _example(
                        "image/encoded", encoded[i], "image/class/label", i + 1
                    ).SerializeToString()
                )
        paths.append(path)
    return tmp_path, encoded


def _one_view():
    import keras

    return (keras.layers.Pipeline([RandomResizedCrop(SIZE, SIZE, seed=0)]),)


def _epoch_labels(stream, epoch):
    return [int(label) for *_, label in stream.images(epoch).as_numpy_iterator()]


def test_records_are_counted_and_labelled(imagenet_records):
    root, _ = imagenet_records
    records = TFRecordImages(str(root / "train-*"), label_offset=-1)
    assert len(records) == 37 and len(records.files) == 4
    given = TFRecordImages(str(root / "train-*"), num_examples=37)
    assert given.files == records.files
    stream = StreamingViews(records, views=_one_view(), image_size=SIZE, batch_size=4)
    seen = _epoch_labels(stream, 0)
    assert sorted(seen) == list(range(37))  # every record once, labels 0-based
    assert stream.skipped == 0


def test_record_epochs_are_fixed_by_seed_and_epoch(imagenet_records):
    root, _ = imagenet_records

    def stream(seed):
        return StreamingViews(
            TFRecordImages(str(root / "train-*"), num_examples=37),
            views=_one_view(),
            image_size=SIZE,
            batch_size=4,
            seed=seed,
            shuffle_buffer=8,
            num_shards=1,
            shard_index=0,
        )

    first = [_epoch_labels(stream(3), epoch) for epoch in range(2)]
    again = stream(3)
    # A resumed run reads epoch 1 in the order it first did.
    assert _epoch_labels(again, 1) == first[1]
    assert first[0] != first[1]
    assert sorted(first[0]) == sorted(first[1])
    assert _epoch_labels(stream(4), 0) != first[0]


def test_record_shards_split_each_epoch_and_take_equal_steps(imagenet_records):
    root, _ = imagenet_records
    records = TFRecordImages(str(root / "train-*"), num_examples=37)
    for num_shards in (2, 5):  # 5 shards > 4 files: records are dealt out
        shards = [
            StreamingViews(
                records,
                views=_one_view(),
                image_size=SIZE,
                batch_size=3,
                num_shards=num_shards,
                shard_index=index,
            )
            for index in range(num_shards)
        ]
        for epoch in (0, 1):
            parts = [_epoch_labels(shard, epoch) for shard in shards]
            assert sorted(sum(parts, [])) == list(range(1, 38))
        steps = 37 // num_shards // 3
        for shard in shards:
            assert shard.steps_per_epoch == steps
            assert len(list(shard.dataset(epochs=2))) == 2 * steps


def test_streaming_images_from_records_equal_those_from_files(
    imagenet_records, tmp_path
):
    root, encoded = imagenet_records
    folder = tmp_path / "files"
    folder.mkdir()
    files = []
    for i, data in enumerate(encoded):
        files.append(str(folder / f"{i:02d}.jpg"))
        (folder / f"{i:02d}.jpg").write_bytes(data)
    records = TFRecordImages(str(root / "train-*"), label_offset=-1)
    from_records = {}
    for images, labels in streaming_images(records, image_size=SIZE, batch_size=8):
        for image, label in zip(images.numpy(), labels.numpy()):
            from_records[int(label)] = image
    from_files = np.concatenate(
        [x.numpy() for x, _ in streaming_images(files, None, SIZE, batch_size=8)]
    )
    assert sorted(from_records) == list(range(37))
    # The same bytes through the same decoder: identical pixels.
    np.testing.assert_array_equal(
        np.stack([from_records[i] for i in range(37)]), from_files
    )


def test_every_shard_takes_the_same_steps_when_files_are_unreadable(tmp_path):
    """A skipped file is made up from the same epoch, so processes that train
    together never wait for one another at the end of an epoch."""
    files = []
    for i in range(24):
        path = tmp_path / f"{i:02d}.jpg"
        path.write_bytes(_jpeg(i) if i % 3 else b"not an image " * 10)
        files.append(str(path))
    os.remove(files[4])  # vanished after listing: the read fails
    shards = [
        StreamingViews(
            files,
            np.arange(24),
            views=_one_view(),
            image_size=SIZE,
            batch_size=4,
            num_shards=2,
            shard_index=index,
            with_labels=True,
        )
        for index in range(2)
    ]
    for shard in shards:
        assert shard.steps_per_epoch == 3
        batches = list(shard.dataset(epochs=2))
        assert len(batches) == 6
        unreadable = [
            sum(i % 3 == 0 or i == 4 for i in shard.order(epoch)) for epoch in (0, 1)
        ]
        # Counted once per epoch (not again for the images made up).
        assert shard.skipped == sum(unreadable)
        order = shard.order(0)
        first_epoch = np.concatenate([labels.numpy() for _, labels in batches[:3]])
        readable = [i for i in order if i % 3 and i != 4]
        # The epoch's readable images in order, then the first ones again.
        expected = (readable + readable)[:12]
        assert first_epoch.tolist() == expected


def test_tfds_records_streams_a_prepared_split(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    class Tiny(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(None, None, 3)),
                        "label": tfds.features.ClassLabel(num_classes=3),
                    }
                ),
            )

        def _split_generators(self, dl_manager):
            return {
                "train": self._generate_examples(12),
                "test": self._generate_examples(5),
            }

        def _generate_examples(self, count):
            for i in range(count):
                rng = np.random.default_rng(i)
                image = rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)
                yield i, {"image": image, "label": i % 3}

    builder = Tiny(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare()
    records = tfds_records("tiny", "train", data_dir=str(tmp_path / "tfds"))
    assert len(records) == 12 and records.image_key == "image"
    stream = StreamingViews(
        records, views=_one_view(), image_size=SIZE, batch_size=4, seed=1
    )
    labels = _epoch_labels(stream, 0)
    assert sorted(labels) == sorted(i % 3 for i in range(12))
    assert stream.skipped == 0 and len(list(stream.dataset(epochs=1))) == 3
    test = tfds_records("tiny", "test", data_dir=str(tmp_path / "tfds"))
    images = np.concatenate(
        [x.numpy() for x, _ in streaming_images(test, image_size=SIZE, batch_size=2)]
    )
    expected = builder.as_dataset(split="test")
    assert len(images) == 5 == len(list(expected))
    with pytest.raises(ValueError, match="split"):
        tfds_records("tiny", "train[:50%]", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match="validation"):
        tfds_records("tiny", "validation", data_dir=str(tmp_path / "tfds"))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"files": "/nonexistent/train-*"}, ValueError, "files"),
        ({"files": []}, ValueError, "files"),
        ({"image_key": ""}, TypeError, "image_key"),
        ({"label_offset": 1.5}, TypeError, "label_offset"),
        ({"num_examples": 0}, ValueError, "num_examples"),
        ({"compression": "LZ4"}, ValueError, "compression"),
    ],
)
def test_invalid_record_arguments_are_named(imagenet_records, kwargs, error, match):
    root, _ = imagenet_records
    arguments = {"files": str(root / "train-*"), **kwargs}
    with pytest.raises(error, match=match):
        TFRecordImages(**arguments)


def test_labels_with_records_and_a_bare_path_are_refused(imagenet_records):
    root, _ = imagenet_records
    records = TFRecordImages(str(root / "train-*"), num_examples=37)
    with pytest.raises(ValueError, match="labels"):
        StreamingViews(records, labels=[0] * 37)
    with pytest.raises(TypeError, match="files"):
        StreamingViews(str(root))
