"""The flags and folder layout of the published scripts: --exp-dir, --arch
resnet18, and --data-dir ROOT holding train/ and val/ (or test/)."""

import numpy as np
import pytest
from PIL import Image

from keras_imsvd import cli
from keras_imsvd.training import UsageError
from keras_imsvd.training import resolve_config
from keras_imsvd.training.data import dataset_root_split
from keras_imsvd.training.data import load_data


def _config(argv):
    return cli.config_from_args(cli.build_parser().parse_args(argv))


def test_exp_dir_and_resnet18_aliases():
    config = _config(
        ["--exp-dir", "/tmp/e", "--dataset", "cifar10", "--arch", "resnet18"]
    )
    assert config.output_dir == "/tmp/e"
    assert config.architecture == "resnet18_cifar"
    with pytest.raises(UsageError, match="for 32 px images. Received: --image-size 16"):
        _config(["--arch", "resnet18"])


def _folder(root, counts, size=12):
    for split, per_class in counts.items():
        for name, count in per_class.items():
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                value = np.full((size, size, 3), 20 * i, np.uint8)
                Image.fromarray(value).save(root / split / name / f"{i}.png")


def test_a_root_with_train_and_val_evaluates_on_val(tmp_path):
    _folder(tmp_path, {"train": {"a": 5, "b": 4}, "val": {"a": 2, "b": 3}})
    assert dataset_root_split(str(tmp_path)) == (
        str(tmp_path / "train"),
        str(tmp_path / "val"),
    )
    config = resolve_config(data_dir=str(tmp_path), image_size=8, batch_size=4)
    data = load_data(config)
    assert data.x_train.shape == (9, 8, 8, 3) and data.x_test.shape == (5, 8, 8, 3)
    assert data.y_train.tolist() == [0] * 5 + [1] * 4
    assert data.y_test.tolist() == [0] * 2 + [1] * 3


def test_class_folders_keep_working_and_bad_roots_are_refused(tmp_path):
    _folder(tmp_path / "classes", {"": {"cat": 3, "dog": 3}})
    assert dataset_root_split(str(tmp_path / "classes")) is None
    _folder(tmp_path / "only_train", {"train": {"a": 3}})
    with pytest.raises(UsageError, match="neither val/ nor test/"):
        dataset_root_split(str(tmp_path / "only_train"))
    _folder(
        tmp_path / "mismatch", {"train": {"a": 3, "b": 3}, "test": {"a": 2, "c": 2}}
    )
    config = resolve_config(
        data_dir=str(tmp_path / "mismatch"), image_size=8, batch_size=2
    )
    with pytest.raises(UsageError, match="differ from those of"):
        load_data(config)
