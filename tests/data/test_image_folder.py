import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_imsvd.data import evaluation_arrays
from keras_imsvd.data import image_folder_dataset
from keras_imsvd.data import list_image_folder
from keras_imsvd.data import load_image_folder
from keras_imsvd.data import multiview_dataset
from keras_imsvd.data import read_image_folder

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _save(path, size, color, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


@pytest.fixture
def folder(tmp_path):
    """Two classes, mixed sizes and formats, a nested folder, non-image files."""
    root = tmp_path / "images"
    _save(root / "cats" / "a.png", (20, 30), RED)  # PIL sizes are (width, height)
    _save(root / "cats" / "b.jpg", (40, 40), RED)
    _save(root / "cats" / "nested" / "c.PNG", (7, 5), RED)
    _save(root / "dogs" / "d.png", (12, 10), BLUE)
    _save(root / "dogs" / "e.png", (9, 9), 128, mode="L")
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / "dogs" / ".hidden.png").write_bytes(b"")
    return root


def test_listing_finds_images_and_classes(folder):
    files, labels, class_names = list_image_folder(folder)
    names = [f.split("images/")[1] for f in files]
    assert names == [
        "cats/a.png",
        "cats/b.jpg",
        "cats/nested/c.PNG",
        "dogs/d.png",
        "dogs/e.png",
    ]
    assert labels.tolist() == [0, 0, 0, 1, 1] and labels.dtype == np.int32
    assert class_names == ["cats", "dogs"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.timeout(120, method="thread")  # a FIFO read blocks even Ctrl-C
def test_only_regular_files_are_listed(folder):
    # Reading a FIFO waits for a writer that never comes.
    os.mkfifo(folder / "cats" / "x.jpg")
    os.mkfifo(folder / "cats" / "nested" / "y.png")
    os.symlink(folder / "cats" / "missing.png", folder / "cats" / "broken.png")
    os.symlink(folder / "dogs" / "d.png", folder / "dogs" / "link.png")
    files, labels, _ = list_image_folder(folder)
    names = [f.split("images/")[1] for f in files]
    assert names == [
        "cats/a.png",
        "cats/b.jpg",
        "cats/nested/c.PNG",
        "dogs/d.png",
        "dogs/e.png",
        "dogs/link.png",
    ]
    images, labels = read_image_folder(folder, 8)
    assert images.shape == (6, 8, 8, 3) and labels.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(images[5], images[3])


def test_mixed_sizes_are_resized_and_colours_kept(folder):
    images, labels = read_image_folder(folder, 8)
    assert images.shape == (5, 8, 8, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], np.broadcast_to(RED, (8, 8, 3)))
    np.testing.assert_array_equal(images[3], np.broadcast_to(BLUE, (8, 8, 3)))
    np.testing.assert_array_equal(images[4], np.full((8, 8, 3), 128))
    assert np.abs(images[1].astype(int) - RED).max() <= 3  # JPEG
    (x, y), (x_val, y_val) = load_image_folder(folder, (6, 4), validation_split=2)
    assert x.shape == (3, 6, 4, 3) and x_val.shape == (2, 6, 4, 3)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert sorted(np.concatenate([y, y_val]).tolist()) == [0, 0, 0, 1, 1]
    (raw, _), _ = load_image_folder(folder, 6, validation_split=0, dtype="uint8")
    assert raw.dtype == np.uint8 and len(raw) == 5


def test_centre_crop_keeps_the_aspect_ratio(tmp_path):
    # 40 wide, 20 high: black quarters at both sides, white in the middle.
    pixels = np.zeros((20, 40, 3), "uint8")
    pixels[:, 10:30] = 255
    path = tmp_path / "wide" / "only" / "image.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(pixels).save(path)
    cropped, _ = read_image_folder(tmp_path / "wide", 10)
    assert cropped.min() == 255  # the centred 20 x 20 square is all white
    stretched, _ = read_image_folder(tmp_path / "wide", 10, crop_to_aspect_ratio=False)
    assert stretched[0, :, 0].max() == 0  # the black side survives


def test_grayscale_channels(folder):
    images, _ = read_image_folder(folder, 4, channels=1)
    assert images.shape == (5, 4, 4, 1)
    np.testing.assert_array_equal(images[4], np.full((4, 4, 1), 128))


def test_cache_is_written_and_read_back(folder, tmp_path):
    cache = tmp_path / "cache"
    first, labels = read_image_folder(folder, 8, cache=True, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1
    # With the cache the (now unreadable) files are not decoded again.
    (folder / "dogs" / "d.png").write_bytes(b"garbage")
    again, labels_again = read_image_folder(folder, 8, cache=True, cache_dir=cache)
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(labels_again, labels)


def test_unreadable_file_is_named(folder):
    (folder / "dogs" / "broken.jpg").write_text("this is no jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        load_image_folder(folder, 8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken.jpg"):
        list(image_folder_dataset(folder, 8))


def test_missing_and_malformed_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_image_folder(tmp_path / "nowhere")
    flat = tmp_path / "flat"
    _save(flat / "a.png", (4, 4), RED)
    with pytest.raises(ValueError, match="sub-folder"):
        list_image_folder(flat)
    empty = tmp_path / "empty"
    (empty / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="No image files"):
        list_image_folder(empty)
    with pytest.raises(ValueError, match="which is a file"):
        list_image_folder(flat / "a.png")
    with pytest.raises(ValueError, match="channels=2"):
        read_image_folder(tmp_path, 8, channels=2)


def test_folder_sources_for_training_and_evaluation(folder):
    def identity(images):
        return images

    dataset = multiview_dataset(
        folder, (identity, identity), batch_size=2, labels=True, image_size=8, seed=0
    )
    batches = [tf.nest.map_structure(lambda x: x.numpy(), b) for b in dataset]
    assert len(batches) == 2
    for views, labels in batches:
        assert views["view_1"].shape == (2, 8, 8, 3)
        # Red images are cats (0), the others dogs (1).
        is_red = views["view_1"][:, 0, 0, 0] > 0.9
        np.testing.assert_array_equal(is_red, labels == 0)
    cached = multiview_dataset(
        folder, (identity, identity), batch_size=2, image_size=8, cache=True
    )
    assert len(list(cached)) == 2
    assert cached.element_spec["view_1"].shape.as_list() == [2, 8, 8, 3]
    with pytest.raises(ValueError, match="image_size"):
        multiview_dataset(folder, batch_size=2)
    with pytest.raises(FileNotFoundError, match="missing"):
        multiview_dataset(str(folder / "missing"), batch_size=2, image_size=8)
    x, y = evaluation_arrays(folder, image_size=8)
    assert x.shape == (5, 8, 8, 3) and x.dtype == np.float32
    assert y.tolist() == [0, 0, 0, 1, 1]
