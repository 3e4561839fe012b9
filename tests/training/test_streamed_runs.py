"""train.py --data-dir with the ImageNet views streams the folder from disk."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_imsvd.training.config import resolve_config
from keras_imsvd.training.config import streams
from keras_imsvd.training.streaming import load_streamed
from keras_imsvd.training.streaming import training_stream

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def _folder(root, per_class, size=(24, 20)):
    rng = np.random.default_rng(0)
    for label in range(3):
        (root / f"class_{label}").mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 80, size + (3,), dtype=np.uint8)
            image[..., label] += 150
            Image.fromarray(image).save(root / f"class_{label}" / f"{i}.jpg")


def test_imagenet_views_on_a_folder_stream_and_limit_reads_only_n_files(tmp_path):
    _folder(tmp_path / "images", 30)
    settings = dict(data_dir=str(tmp_path / "images"), image_size=16, batch_size=8)
    config = resolve_config(**settings, limit=20, validation_size=9)
    assert streams(config)
    assert not streams(resolve_config(**settings, views="cifar"))
    data = load_streamed(config)
    assert len(data.x_train) == 20 and len(data.x_test) == 9
    kept = set(data.x_train.files)
    # Every training file left out becomes unreadable: the stream never reads
    # one, so nothing is skipped.
    for name in sorted(
        set(_all_files(tmp_path / "images")) - kept - set(data.x_test.files)
    ):
        with open(name, "wb") as f:
            f.write(b"not an image")
    stream = training_stream(config, data, views=None)
    seen = [batch for batch in stream.dataset(epochs=2)]
    assert len(seen) == 2 * (20 // 8) and stream.skipped == 0


def _all_files(root):
    return [str(p) for p in root.rglob("*.jpg")]


@pytest.mark.slow
def test_a_streamed_run_trains_and_evaluates(tmp_path):
    _folder(tmp_path / "images", 24)
    (tmp_path / "images" / "class_0" / "bad.jpg").write_bytes(b"not an image")
    out = tmp_path / "run"
    args = [
        "--data-dir", str(tmp_path / "images"), "--arch", "small_convnet",
        "--mlp", "32-32", "--bin-size", "16", "--image-size", "16",
        "--batch-size", "16", "--validation-size", "15", "--epochs", "2",
        "--probe-epochs", "2", "--eval-every", "1", "--output-dir", str(out),
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "unreadable image file(s)" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2
    assert set(metrics["results"]) == {"IMSVD (learned)", "random init"}
    for row in metrics["results"].values():
        assert 0.0 <= row["knn"] <= 1.0


def test_the_published_evaluation_is_refused_for_a_streamed_folder(tmp_path, capsys):
    # The published linear evaluation reads its images into memory; a streamed
    # folder would silently get the fast one, so the run stops first.
    from keras_imsvd import cli

    _folder(tmp_path / "images", 12)
    out = tmp_path / "run"
    argv = [
        "--data-dir", str(tmp_path / "images"), "--arch", "small_convnet",
        "--image-size", "16", "--batch-size", "8", "--validation-size", "6",
        "--epochs", "1", "--eval-protocol", "published", "--output-dir", str(out),
    ]  # fmt: skip
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert "--eval-protocol" in error and "streams from disk" in error
    assert not out.exists()


def test_resolve_config_refuses_the_published_evaluation_for_a_streamed_folder(
    tmp_path,
):
    from keras_imsvd.training.config import UsageError

    _folder(tmp_path / "images", 4)
    settings = dict(data_dir=str(tmp_path / "images"), image_size=16, batch_size=4)
    with pytest.raises(UsageError, match="streams from disk") as raised:
        resolve_config(**settings, eval_protocol="published")
    assert raised.value.field == "eval_protocol"
    # Views drawn on the device read the folder into memory: allowed there.
    config = resolve_config(**settings, eval_protocol="published", augment_on="device")
    assert not streams(config)
