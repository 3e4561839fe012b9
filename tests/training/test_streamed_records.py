"""train.py streams TFRecord roots and TFDS data sets, as it streams folders."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_imsvd.data import TFRecordImages
from keras_imsvd.training.config import UsageError
from keras_imsvd.training.config import resolve_config
from keras_imsvd.training.config import streams
from keras_imsvd.training.streaming import load_streamed
from keras_imsvd.training.streaming import monitor_images
from keras_imsvd.training.streaming import training_stream
from tests.conftest import run_train_py


def _encoded(index):
    rng = np.random.default_rng(index)
    image = rng.integers(0, 80, (30 + index % 5, 36, 3), dtype=np.uint8)
    image[..., index % 3] += 150
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _write(path, indices):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in indices:
            feature = {
                "image/encoded": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[_encoded(i)])
                ),
                # 1-based, as TensorFlow's ImageNet scripts write them.
                "image/class/label": tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[i % 3 + 1])
                ),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


@pytest.fixture
def record_root(tmp_path):
    root = tmp_path / "records"
    root.mkdir()
    _write(root / "train-00000-of-00002", range(0, 30))
    _write(root / "train-00001-of-00002", range(30, 60))
    _write(root / "validation-00000-of-00001", range(60, 81))
    return root


def test_a_root_of_tfrecords_streams_with_its_validation_files(record_root):
    config = resolve_config(data_dir=str(record_root), image_size=16, batch_size=8)
    assert streams(config)
    data = load_streamed(config)
    assert isinstance(data.x_train.files, TFRecordImages)
    assert len(data.x_train) == 60 and len(data.x_test) == 21
    expected = [i % 3 + 1 for i in range(60)]
    np.testing.assert_array_equal(data.y_train, expected)
    stream = training_stream(config, data, views=None)
    assert stream.steps_per_epoch == 60 // 8
    assert len(list(stream.dataset(epochs=1))) == 60 // 8
    (x_train, y_train), (x_test, y_test) = monitor_images(config, data)
    assert x_train.shape == (60, 16, 16, 3) and x_test.shape == (21, 16, 16, 3)
    assert sorted(y_train) == sorted(expected)


def test_limit_reads_the_first_records_only(record_root):
    config = resolve_config(
        data_dir=str(record_root), image_size=16, batch_size=8, limit=20
    )
    data = load_streamed(config)
    assert len(data.x_train) == 20
    np.testing.assert_array_equal(data.y_train, [i % 3 + 1 for i in range(20)])
    stream = training_stream(config, data, views=None)
    labels = [int(y) for *_, y in stream.images(0).as_numpy_iterator()]
    assert sorted(labels) == sorted(i % 3 + 1 for i in range(20))


def test_a_root_of_training_records_alone_is_refused(record_root):
    os.remove(record_root / "validation-00000-of-00001")
    config = resolve_config(data_dir=str(record_root), image_size=16, batch_size=8)
    with pytest.raises(UsageError, match="validation"):
        load_streamed(config)


def _prepare_tfds(data_dir):
    """Prepares a small TFDS data set `tiny_shapes` (train 48, validation 21)
    in `data_dir`, in a process of its own (the builder registers by name)."""
    script = f"""
import numpy as np
import tensorflow_datasets as tfds

class TinyShapes(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({{
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(num_classes=3),
            }}),
        )

    def _split_generators(self, dl_manager):
        return {{
            "train": self._generate_examples(0, 48),
            "validation": self._generate_examples(48, 69),
        }}

    def _generate_examples(self, start, stop):
        for i in range(start, stop):
            image = np.random.default_rng(i).integers(0, 80, (30, 36, 3), "uint8")
            image[..., i % 3] += 150
            yield i, {{"image": image, "label": i % 3}}

TinyShapes(data_dir={str(data_dir)!r}).download_and_prepare()
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.slow
def test_train_py_streams_a_tfds_data_set(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    _prepare_tfds(tmp_path / "tfds")
    out = tmp_path / "run"
    args = [
        "--dataset", "tiny_shapes", "--arch", "small_convnet", "--mlp", "32-32",
        "--bin-size", "16", "--image-size", "16", "--batch-size", "16",
        "--epochs", "2", "--probe-epochs", "2", "--eval-every", "1",
        "--output-dir", str(out),
    ]  # fmt: skip
    result = run_train_py(args, TFDS_DATA_DIR=str(tmp_path / "tfds"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "48 training and 21 held-out images" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2
    assert set(metrics["results"]) == {"IMSVD (learned)", "random init"}
    for row in metrics["results"].values():
        assert 0.0 <= row["knn"] <= 1.0


@pytest.mark.slow
def test_train_py_streams_a_tfrecord_root_with_the_published_evaluation(
    record_root, tmp_path
):
    out = tmp_path / "run"
    args = [
        "--data-dir", str(record_root), "--arch", "small_convnet", "--mlp", "32-32",
        "--bin-size", "16", "--image-size", "16", "--batch-size", "16",
        "--epochs", "1", "--eval-protocol", "published", "--eval-epochs", "1",
        "--output-dir", str(out),
    ]  # fmt: skip
    result = run_train_py(args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "60 training and 21 held-out images" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluation"]["protocol"] == "published"
    learned = metrics["results"]["IMSVD (learned)"]
    assert 0.0 <= learned["knn"] <= 1.0
    assert 0.0 <= learned["linear_top1"] <= 1.0
