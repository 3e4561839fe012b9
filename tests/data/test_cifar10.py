import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_imsvd.augment import RandomResizedCrop
from keras_imsvd.data import extract_cifar10_archive
from keras_imsvd.data import find_cifar10_archive
from keras_imsvd.data import load_cifar10_folder
from keras_imsvd.data import multiview_dataset
from keras_imsvd.data.paths import _find_shared_dir

# ../shared from the repository root, unless KERAS_IMSVD_SHARED says otherwise.
SHARED = Path(
    os.environ.get("KERAS_IMSVD_SHARED", Path(__file__).resolve().parents[3] / "shared")
)
ARCHIVE = SHARED / "datasets" / "cifar10" / "cifar10_train_jpeg.tar.gz"


def _fake_archive(path, per_class=4):
    """A small archive with the layout of the shared one."""
    with tarfile.open(path, "w:gz") as tar:
        for label, name in enumerate(["airplane", "automobile"]):
            for index in range(per_class):
                buffer = io.BytesIO()
                color = (label * 255, index * 60, 0)
                Image.new("RGB", (32, 32), color).save(buffer, "JPEG", quality=95)
                info = tarfile.TarInfo(f"train/{name}/{index:04d}.jpg")
                info.size = buffer.tell()
                buffer.seek(0)
                tar.addfile(info, buffer)


def test_extracts_once_and_loads_with_a_split(tmp_path, monkeypatch):
    archive = tmp_path / "cifar10_train_jpeg.tar.gz"
    _fake_archive(archive)
    cache = tmp_path / "cache"
    train_dir = extract_cifar10_archive(archive, cache_dir=cache)
    assert sorted(p.name for p in train_dir.iterdir()) == ["airplane", "automobile"]
    assert len(list(train_dir.rglob("*.jpg"))) == 8

    def no_second_extraction(*args, **kwargs):
        raise AssertionError("extracted twice")

    monkeypatch.setattr(tarfile, "open", no_second_extraction)
    assert extract_cifar10_archive(archive, cache_dir=cache) == train_dir

    (x, y), (x_val, y_val) = load_cifar10_folder(
        train_dir, validation_split=4, cache_dir=cache, dtype="uint8"
    )
    assert x.shape == (4, 32, 32, 3) and x_val.shape == (4, 32, 32, 3)
    assert np.bincount(y_val).tolist() == [2, 2]
    assert len(list(cache.glob("*.npz"))) == 1
    # Red is 0 for airplanes and 255 for automobiles.
    np.testing.assert_array_equal(x[:, 0, 0, 0] > 127, y == 1)


def test_missing_archive_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_IMSVD_CIFAR10_ARCHIVE", raising=False)
    with pytest.raises(FileNotFoundError, match="KERAS_IMSVD_SHARED"):
        find_cifar10_archive(shared_dir=tmp_path)
    monkeypatch.setenv("KERAS_IMSVD_SHARED", str(tmp_path))
    assert _find_shared_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="cifar10_train_jpeg.tar.gz"):
        find_cifar10_archive()


def test_the_archive_variable_names_the_file_itself(tmp_path, monkeypatch):
    archive = tmp_path / "anywhere.tar.gz"
    archive.write_bytes(b"")
    monkeypatch.setenv("KERAS_IMSVD_CIFAR10_ARCHIVE", str(archive))
    # It takes precedence over the shared folder.
    assert find_cifar10_archive(shared_dir=tmp_path / "elsewhere") == archive
    monkeypatch.setenv("KERAS_IMSVD_CIFAR10_ARCHIVE", str(tmp_path / "missing"))
    with pytest.raises(
        FileNotFoundError, match="KERAS_IMSVD_CIFAR10_ARCHIVE=.*missing"
    ):
        find_cifar10_archive()


@pytest.mark.slow
@pytest.mark.skipif(
    not ARCHIVE.is_file(),
    reason=f"the shared CIFAR-10 archive is absent ({ARCHIVE}); set KERAS_IMSVD_SHARED",
)
def test_shared_cifar10_archive():
    # Extracts and decodes once into the user cache (about 20 s), then reads .npz.
    train_dir = extract_cifar10_archive(find_cifar10_archive(SHARED))
    (x, y), (x_val, y_val) = load_cifar10_folder(
        train_dir, validation_split=5000, dtype="uint8"
    )
    assert x.shape == (45000, 32, 32, 3) and x_val.shape == (5000, 32, 32, 3)
    assert x.dtype == np.uint8 and y.dtype == np.int32
    assert np.bincount(y_val).tolist() == [500] * 10
    assert np.bincount(y).tolist() == [4500] * 10
    assert 100 < x.mean() < 150  # natural images, not blank files
    crop = RandomResizedCrop(32, 32, scale=(0.2, 1.0), seed=0)
    dataset = multiview_dataset(
        (x[:512], y[:512]), (crop, crop), batch_size=256, labels=True, seed=0
    )
    views, labels = next(iter(dataset))
    assert tuple(views["view_1"].shape) == (256, 32, 32, 3)
    assert float(np.max(views["view_2"])) <= 1.0
