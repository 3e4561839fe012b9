"""train.py --data-dir with the ImageNet views streams the folder from disk."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from keras_imsvd.training.config import resolve_config
from keras_imsvd.training.config import streams
from keras_imsvd.training.streaming import load_streamed
from keras_imsvd.training.streaming import training_stream
from tests.conftest import run_train_py


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
    for label in range(3):  # unreadable files among the training files
        (tmp_path / "images" / f"class_{label}" / "bad.jpg").write_bytes(
            b"not an image"
        )
    out = tmp_path / "run"
    args = [
        "--data-dir", str(tmp_path / "images"), "--arch", "small_convnet",
        "--mlp", "32-32", "--bin-size", "16", "--image-size", "16",
        "--batch-size", "16", "--validation-size", "15", "--epochs", "2",
        "--probe-epochs", "2", "--eval-every", "1", "--output-dir", str(out),
    ]  # fmt: skip
    result = run_train_py(args)
    assert result.returncode == 0, result.stderr[-3000:]
    skipped = re.findall(r"epoch (\d): skipped (\d+) unreadable image", result.stdout)
    assert skipped and all(int(count) >= 1 for _, count in skipped), result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2
    assert set(metrics["results"]) == {"IMSVD (learned)", "random init"}
    for row in metrics["results"].values():
        assert 0.0 <= row["knn"] <= 1.0


def _root(root, per_split, size=(40, 32)):
    """ROOT/train/ and ROOT/val/, as the published ImageNet layout."""
    for split, count in per_split.items():
        _folder(root / split, count, size)


@pytest.mark.slow
def test_the_published_evaluation_of_a_streamed_folder(tmp_path, capsys):
    # The linear evaluation reads the files again each epoch; the kNN reads
    # streamed features, as the fast protocol does.
    from keras_imsvd import cli

    _root(tmp_path / "imagenet", {"train": 12, "val": 4})
    (tmp_path / "imagenet" / "val" / "class_1" / "bad.jpg").write_text("not an image")
    out = tmp_path / "run"
    argv = [
        "--data-dir", str(tmp_path / "imagenet"), "--views", "imagenet",
        "--arch", "small_convnet", "--mlp", "32-32", "--bin-size", "16",
        "--image-size", "16", "--batch-size", "8", "--epochs", "1",
        "--eval-protocol", "published", "--eval-epochs", "2", "--verbose", "0",
        "--output-dir", str(out),
    ]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err[-3000:]
    printed = capsys.readouterr().out
    assert "(streamed, published imagenet linear evaluation)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluation"]["protocol"] == "published"
    settings = metrics["evaluation"]["settings"]
    assert (settings["protocol"], settings["epochs"]) == ("imagenet", 2)
    assert (settings["image_size"], settings["test_resize"]) == (16, 18)
    assert settings["batch_size"] == 36  # the 36 training files, under 256
    results = metrics["results"]
    assert set(results) == {"IMSVD (learned)", "random init"}
    assert set(results["IMSVD (learned)"]) == {
        "knn",
        "linear_top1",
        "linear_best_top1",
    }
    assert set(results["random init"]) == {"knn"}
    for row in results.values():
        # 12 readable held-out images: accuracies are multiples of 1/12.
        for value in row.values():
            assert np.isfinite(value) and 0.0 <= value <= 1.0
            assert value * 12 == pytest.approx(round(value * 12))
    learned = results["IMSVD (learned)"]
    assert learned["linear_best_top1"] >= learned["linear_top1"]
    lines = (out / "results.txt").read_text().splitlines()
    assert lines[0].startswith("evaluation: published imagenet linear evaluation")
    assert "2 epochs, batch 36" in lines[0]


def test_resolve_config_takes_the_published_evaluation_for_a_streamed_folder(
    tmp_path,
):
    _folder(tmp_path / "images", 4)
    settings = dict(data_dir=str(tmp_path / "images"), image_size=16, batch_size=4)
    config = resolve_config(**settings, eval_protocol="published")
    assert streams(config) and config.eval_protocol == "published"
    config = resolve_config(**settings, eval_protocol="published", augment_on="device")
    assert not streams(config)
