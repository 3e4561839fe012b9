"""train.py's --eval-protocol published, and CIFAR-10 on every training image with
its test split (--validation-size 0)."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_imsvd import cli
from keras_imsvd.training import UsageError
from keras_imsvd.training import resolve_config
from keras_imsvd.training.config import published_protocol
from keras_imsvd.training.data import load_data
from keras_imsvd.training.evaluate import describe
from keras_imsvd.training.evaluate import evaluation_settings


def _squares(root, counts, size=32, num_classes=10, seed=0):
    """ROOT/<split>/<class>/<i>.png: a square of the class colour on noise."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 255, size=(num_classes, 3))
    for split, per_class in counts.items():
        for label in range(num_classes):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
                top, left = rng.integers(0, size // 4, size=2)
                side = 3 * size // 4
                image[top : top + side, left : left + side] = colours[label]
                Image.fromarray(image).save(folder / f"{i}.png")


def test_the_recipe_picks_the_published_protocol(tmp_path):
    assert published_protocol(resolve_config(dataset="cifar10")) == "cifar10"
    assert published_protocol(resolve_config(data_dir=str(tmp_path))) == "imagenet"
    folder_32 = resolve_config(data_dir=str(tmp_path), image_size=32)
    assert published_protocol(folder_32) == "cifar10"
    assert published_protocol(resolve_config(dataset="imagenette")) == "imagenet"
    assert published_protocol(resolve_config()) is None
    # --dataset cifar10 with a folder takes the CIFAR-10 recipe.
    config = resolve_config(dataset="cifar10", data_dir=str(tmp_path))
    assert (config.architecture, config.image_size) == ("resnet18_cifar", 32)
    assert resolve_config(data_dir=str(tmp_path)).architecture == "resnet50"


def test_metrics_name_each_protocol_and_its_settings():
    fast = evaluation_settings(resolve_config(probe_epochs=7), num_train=1000)
    assert fast["protocol"] == "fast"
    assert fast["settings"]["linear_probe"]["epochs"] == 7
    assert fast["settings"]["knn"] == {"k": 20, "temperature": 0.07}
    assert describe(fast).startswith("evaluation: fast protocol: kNN k=20 T=0.07")
    config = resolve_config(
        dataset="cifar10", eval_protocol="published", eval_epochs=10
    )
    published = evaluation_settings(config, num_train=100)
    settings = published["settings"]
    assert published["protocol"] == "published" and settings["protocol"] == "cifar10"
    assert settings["milestones"] == [6, 8] and settings["batch_size"] == 100
    assert (settings["learning_rate"], settings["test_resize"]) == (30.0, 36)
    text = describe(published)
    assert text.startswith("evaluation: published cifar10 linear evaluation")
    assert "10 epochs, batch 100, SGD lr 30 momentum 0.9" in text
    assert "x0.1 at epochs [6, 8]" in text
    imagenet = evaluation_settings(
        resolve_config(dataset="imagenette", eval_protocol="published"), 5000
    )
    assert "lr 0.02" in describe(imagenet) and "cosine" in describe(imagenet)


def test_bad_protocol_settings_exit_2_naming_the_flag(tmp_path, capsys):
    out = ["--output-dir", str(tmp_path / "run")]
    for argv, needle in [
        (
            ["--eval-protocol", "published"],
            "--eval-protocol must be fast for the digits",
        ),
        (["--dataset", "cifar10", "--eval-epochs", "0"], "--eval-epochs must be"),
        (["--validation-size", "0"], "--validation-size must be an integer >= 1 for"),
        (["--dataset", "cifar10", "--validation-size", "-1"], "Received: -1"),
    ]:
        assert cli.main([*argv, *out]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_folder_without_test_split_refuses_validation_size_0(tmp_path):
    _squares(tmp_path / "classes", {"": 2}, size=8, num_classes=2)
    config = resolve_config(
        data_dir=str(tmp_path / "classes"), validation_size=0, batch_size=2
    )
    with pytest.raises(UsageError, match="has none: give a root") as info:
        load_data(config)
    assert info.value.field == "validation_size"


def _fake_tfds(monkeypatch, calls, fail=False):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def load(name, split, **kwargs):
        calls.append((name, split))
        if fail:
            raise OSError("no network")
        images = np.full((6, 32, 32, 3), 51, np.uint8)
        labels = np.arange(6, dtype=np.int64) % 3
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    monkeypatch.setattr(tfds, "load", load)


def test_cifar10_trains_on_every_image_and_tests_on_the_tfds_test_split(
    monkeypatch,
):
    import keras_imsvd.data as data_lib

    train = np.zeros((40, 32, 32, 3), "float32"), np.arange(40) % 3

    def archive(validation_split, seed):
        assert validation_split == 0  # every training image
        return train, (train[0][:0], train[1][:0])

    monkeypatch.setattr(data_lib, "load_cifar10_folder", archive)
    calls = []
    _fake_tfds(monkeypatch, calls)
    config = resolve_config(dataset="cifar10", validation_size=0, batch_size=8)
    data = load_data(config)
    assert set(calls) == {("cifar10", "test")}
    assert data.x_train.shape == (40, 32, 32, 3)
    assert data.x_test.shape == (6, 32, 32, 3) and data.y_test.tolist() == [
        0,
        1,
        2,
        0,
        1,
        2,
    ]
    np.testing.assert_allclose(data.x_test, 0.2, atol=1e-6)  # 51 / 255


def test_cifar10_without_a_test_split_says_the_archive_has_none(monkeypatch):
    calls = []
    _fake_tfds(monkeypatch, calls, fail=True)
    config = resolve_config(dataset="cifar10", validation_size=0)
    with pytest.raises(UsageError) as info:
        load_data(config)
    message = cli._in_flags(str(info.value), info.value.field)
    assert message.startswith("--validation-size 0 evaluates on the test split")
    assert "cifar10_train_jpeg.tar.gz) holds the 50,000 training images only" in message
    assert "OSError: no network" in message and "--data-dir ROOT" in message


@pytest.mark.slow
def test_train_py_with_the_published_protocol_and_a_test_folder(tmp_path, capsys):
    _squares(tmp_path / "cifar", {"train": 8, "test": 3})
    out = tmp_path / "run"
    argv = [
        "--dataset",
        "cifar10",
        "--data-dir",
        str(tmp_path / "cifar"),
        "--validation-size",
        "0",
        "--arch",
        "small_convnet",
        "--mlp",
        "64-64",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--eval-every",
        "1",
        "--eval-protocol",
        "published",
        "--eval-epochs",
        "2",
        "--verbose",
        "0",
        "--output-dir",
        str(out),
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err[-2000:]
    assert "80 training and 30 held-out images" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluation"]["protocol"] == "published"
    settings = metrics["evaluation"]["settings"]
    assert settings["protocol"] == "cifar10" and settings["epochs"] == 2
    assert settings["milestones"] == [1, 1] and settings["batch_size"] == 80
    assert (settings["image_size"], settings["test_resize"]) == (32, 36)
    assert metrics["config"]["validation_size"] == 0
    results = metrics["results"]
    assert set(results) == {"IMSVD (learned)", "random init", "raw pixels"}
    # The linear evaluation is the learned encoder's; every row has the kNN.
    learned = results["IMSVD (learned)"]
    assert set(learned) == {
        "knn",
        "linear_top1",
        "linear_best_top1",
        "linear_top5",
        "linear_best_top5",
    }
    assert set(results["random init"]) == set(results["raw pixels"]) == {"knn"}
    for row in results.values():
        # 30 test images: accuracies are multiples of 1/30.
        for value in row.values():
            assert 0.0 <= value <= 1.0 and value * 30 == pytest.approx(
                round(value * 30)
            )
    assert learned["linear_best_top1"] >= learned["linear_top1"]
    assert learned["linear_top5"] >= learned["linear_top1"]
    lines = (out / "results.txt").read_text().splitlines()
    assert lines[0].startswith("evaluation: published cifar10 linear evaluation")
    assert "2 epochs, batch 80" in lines[0]
    assert "linear_top1" in lines[2]
    assert lines[-1].split()[-1] == "-"  # raw pixels: no linear evaluation
