import math

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_imsvd._keras_compat import ops_backend
from keras_imsvd.augment import RandomResizedCrop
from keras_imsvd.augment import imagenet_views
from keras_imsvd.data import StreamingViews
from keras_imsvd.data import list_image_files
from keras_imsvd.data import streaming_images
from keras_imsvd.data.streaming import _jpeg_window

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def _windows(layer, draws, height, width):
    with ops_backend(layer, "tensorflow"):
        boxes, flip = layer.crop_windows(tf.constant(draws), height, width)
    return boxes.numpy(), flip


def _torchvision_window(draws, height, width, scale, ratio):
    """torchvision's `RandomResizedCrop.get_params` in float64, on given draws."""
    area = height * width
    for attempt in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * draws[attempt])
        log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
        aspect = math.exp(log_lo + (log_hi - log_lo) * draws[10 + attempt])
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = min(math.floor(draws[20] * (height - h + 1)), height - h)
            left = min(math.floor(draws[21] * (width - w + 1)), width - w)
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@pytest.mark.parametrize("height, width", [(350, 400), (500, 333), (64, 300)])
def test_crop_windows_match_a_float64_torchvision_transcription(height, width):
    layer = RandomResizedCrop(224, 224, scale=SCALE, ratio=RATIO)
    draws = np.random.default_rng(height).uniform(size=(3000, layer.num_draws))
    boxes, _ = _windows(layer, draws.astype("float32"), height, width)
    reference = np.array(
        [_torchvision_window(d, height, width, SCALE, RATIO) for d in draws]
    )
    # float32 against float64 rounding moves a crop by a pixel at .5 ties.
    same = np.all(boxes == reference, axis=1)
    assert same.mean() > 0.99
    assert np.abs(boxes - reference).max() <= 1
    area = boxes[:, 2] * boxes[:, 3] / (height * width)
    reference_area = reference[:, 2] * reference[:, 3] / (height * width)
    assert abs(area.mean() - reference_area.mean()) < 1e-3
    aspect = np.log(boxes[:, 3] / boxes[:, 2])
    assert abs(aspect.mean() - np.log(reference[:, 3] / reference[:, 2]).mean()) < 1e-3
    assert np.all(boxes[:, :2] >= 0)
    assert np.all(boxes[:, 0] + boxes[:, 2] <= height)
    assert np.all(boxes[:, 1] + boxes[:, 3] <= width)


def test_crop_windows_fall_back_to_the_centre():
    # At full area a 2:1 ratio never fits a square: 10 misses, then the centre.
    layer = RandomResizedCrop(8, 8, scale=(1.0, 1.0), ratio=(2.0, 3.0))
    draws = np.random.default_rng(0).uniform(size=(5, layer.num_draws))
    boxes, _ = _windows(layer, draws.astype("float32"), 64, 64)
    expected = _torchvision_window(draws[0], 64, 64, (1.0, 1.0), (2.0, 3.0))
    np.testing.assert_array_equal(boxes, np.tile(expected, (5, 1)))
    assert expected == (16, 0, 32, 64)


def _photo(height, width, seed=0):
    """A smooth image with some texture (JPEG-friendly), uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(6 * x + c) * np.cos(4 * y - c) for c in range(3)]
    image = 127.5 + 100 * np.stack(channels, -1) + rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).astype("uint8")


@pytest.mark.parametrize("window", [(0, 0, 350, 400), (17, 33, 101, 203), (5, 9, 8, 8)])
def test_decode_and_crop_equals_decode_then_crop(tmp_path, window):
    path = tmp_path / "a.jpg"
    Image.fromarray(_photo(350, 400)).save(path, quality=90)
    contents = tf.io.read_file(str(path))
    top, left, height, width = window
    whole = tf.io.decode_jpeg(contents, channels=3).numpy()
    cropped = _jpeg_window(contents)(tf.constant(window)).numpy()
    expected = whole[top : top + height, left : left + width]
    assert cropped.shape == expected.shape
    # libjpeg upsamples chroma from the window's own blocks: edge pixels may
    # differ by a level or two, the rest is identical.
    difference = np.abs(cropped.astype(int) - expected.astype(int))
    assert difference.max() <= 3
    assert (difference == 0).mean() > 0.95


@pytest.fixture
def bad_folder(tmp_path):
    """One class folder holding a file of each awkward kind."""
    root = tmp_path / "images"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    image = _photo(60, 80)
    Image.fromarray(image).save(root / "a" / "good.jpg", quality=90)
    good = (root / "a" / "good.jpg").read_bytes()
    (root / "a" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "a" / "text.jpg").write_bytes(b"not an image at all " * 20)
    Image.fromarray(image).convert("CMYK").save(root / "b" / "cmyk.jpg")
    Image.fromarray(image).convert("L").save(root / "b" / "gray.jpg")
    rgba = np.dstack([image, image[..., :1]])
    Image.fromarray(rgba, "RGBA").save(root / "b" / "rgba.png")
    (root / "b" / "header.jpg").write_bytes(good[:20])
    return root


def test_bad_files_decode_to_rgb_or_are_skipped(bad_folder):
    files, labels, _ = list_image_files(bad_folder)
    stream = StreamingViews(files, labels, image_size=16, batch_size=2, seed=0)
    out = list(stream.images(0))
    names = sorted(files[i].rsplit("/", 1)[1] for i in stream.order(0))
    assert len(names) == 7
    # good, truncated (gray rows), CMYK, gray and RGBA decode; the text file
    # (not an image) and the 20-byte header (fails to decode, dropped by
    # tf.data) are skipped and counted.
    assert len(out) == 5
    assert stream.skipped == 2
    for first, second, _ in out:
        assert first.shape == (16, 16, 3) and first.dtype == tf.uint8
        assert second.shape == (16, 16, 3)
    messages = []
    callback = stream.callback(messages.append)
    callback.on_epoch_end(0)
    assert messages == ["epoch 1: skipped 2 unreadable image(s) (2 in all)"]
    # 7 files, batch 2: 3 batches per epoch whatever is skipped; the sixth
    # image comes from the start of the epoch's order, with new crops.
    assert stream.steps_per_epoch == 3
    batches = list(stream.dataset(epochs=2))
    assert len(batches) == 6
    # 2 per epoch: epoch 0, read twice (images and dataset), counts once,
    # and the images made up from the epoch's start are not counted again.
    assert stream.skipped_by_epoch() == {0: 2, 1: 2}
    assert stream.skipped == 4
    callback.on_epoch_end(1)
    assert messages[-1] == "epoch 2: skipped 2 unreadable image(s) (4 in all)"
    callback.on_epoch_end(2)
    assert len(messages) == 2  # nothing skipped in epoch 3: no line
    evaluated = list(streaming_images(files, labels, 16, 4))
    assert sum(len(x) for x, _ in evaluated) == 5


def test_order_is_a_permutation_fixed_by_seed_and_epoch():
    files = [f"{i}.jpg" for i in range(101)]
    stream = StreamingViews(files, seed=3, num_shards=1, shard_index=0)
    again = StreamingViews(files, seed=3, num_shards=1, shard_index=0)
    orders = [stream.order(epoch) for epoch in range(3)]
    assert sorted(orders[0]) == list(range(101))
    np.testing.assert_array_equal(orders[2], again.order(2))
    assert not np.array_equal(orders[0], orders[1])
    other = StreamingViews(files, seed=4, num_shards=1, shard_index=0)
    assert not np.array_equal(orders[0], other.order(0))


def test_shards_split_each_epoch_between_processes():
    files = [f"{i}.jpg" for i in range(103)]
    shards = [
        StreamingViews(files, seed=0, batch_size=10, num_shards=3, shard_index=i)
        for i in range(3)
    ]
    for epoch in (0, 5):
        parts = [shard.order(epoch) for shard in shards]
        assert sorted(np.concatenate(parts)) == list(range(103))
        assert [len(p) for p in parts] == [shard.files_per_epoch for shard in shards]
    # 35, 34 and 34 files: 3 batches of 10 on every shard, so no process waits.
    assert [shard.files_per_epoch for shard in shards] == [35, 34, 34]
    assert [shard.steps_per_epoch for shard in shards] == [3, 3, 3]


def test_views_crop_the_full_resolution_image(tmp_path):
    # A PNG (exact pixels) and a crop covering all of it: the view is the
    # antialiased resize of the whole image, flipped where the crop flips.
    root = tmp_path / "images" / "a"
    root.mkdir(parents=True)
    image = _photo(48, 64)
    Image.fromarray(image).save(root / "x.png")
    crop = RandomResizedCrop(16, 16, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3))
    crop_2 = RandomResizedCrop(16, 16, scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3))
    import keras

    views = (keras.layers.Pipeline([crop]), keras.layers.Pipeline([crop_2]))
    stream = StreamingViews(
        [str(root / "x.png")], views=views, image_size=16, batch_size=1
    )
    first, second, _ = next(iter(stream.images(0)))
    expected = tf.image.resize(image.astype("float32"), (16, 16), antialias=True)
    expected = np.clip(np.round(expected.numpy()), 0, 255)
    for view in (first.numpy(), second.numpy()):
        assert np.array_equal(view, expected) or np.array_equal(view, expected[:, ::-1])


def test_batches_are_float_views_in_unit_range(tmp_path):
    root = tmp_path / "images" / "a"
    root.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(_photo(70, 90, seed=i)).save(root / f"{i}.jpg")
    files, labels, _ = list_image_files(tmp_path / "images")
    views = imagenet_views(32, seed=0)
    stream = StreamingViews(files, labels, views, 32, batch_size=2, with_labels=True)
    pair, batch_labels = next(iter(stream.dataset()))
    for key in ("view_1", "view_2"):
        values = pair[key].numpy()
        assert values.shape == (2, 32, 32, 3) and values.dtype == np.float32
        assert 0.0 <= values.min() and values.max() <= 1.0
    assert batch_labels.numpy().tolist() == [0, 0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"files": []}, "files"),
        ({"labels": [0, 1]}, "labels"),
        ({"num_shards": 2, "shard_index": 2}, "shard_index"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_invalid_arguments_are_named(kwargs, match):
    arguments = {"files": ["a.jpg"], **kwargs}
    with pytest.raises(ValueError, match=match):
        StreamingViews(**arguments)


def test_a_jpeg_is_decoded_once_for_both_views(tmp_path):
    # Full-area crops with out-of-range ratios fall back to centred windows,
    # (24, 0, 32, 64) and (27, 0, 26, 64) of an 80 x 64 image: one decode of
    # the box holding both, each view cropped from it at its own offset.
    import keras

    image = _photo(80, 64)
    Image.fromarray(image).save(tmp_path / "x.jpg", quality=95)
    layers = [
        RandomResizedCrop(16, 16, scale=(1.0, 1.0), ratio=ratio, horizontal_flip=False)
        for ratio in ((2.0, 3.0), (2.5, 3.0))
    ]
    views = tuple(keras.layers.Pipeline([layer]) for layer in layers)
    stream = StreamingViews(
        [str(tmp_path / "x.jpg")], views=views, image_size=16, batch_size=1
    )
    first, second, _ = next(iter(stream.images(0)))
    decoded = tf.io.decode_jpeg(tf.io.read_file(str(tmp_path / "x.jpg")), 3)
    for view, (top, height) in zip((first, second), ((24, 32), (27, 26))):
        window = tf.cast(decoded[top : top + height], "float32")
        expected = tf.image.resize(window, (16, 16), antialias=True).numpy()
        difference = np.abs(view.numpy() - np.round(expected))
        # Partial and whole decodes differ by a level or two at the edges.
        assert difference.max() <= 3 and difference.mean() < 0.5


def test_crops_smaller_than_the_view_skip_the_antialiasing_filter(tmp_path):
    # Upscaling, the antialiased resize and the plain one agree; the stream
    # takes the plain one there, and the antialiased one when shrinking.
    image = tf.constant(_photo(40, 50).astype("float32"))
    for size in (64, 24):
        stream = StreamingViews(["a.png"], image_size=size, batch_size=1)
        view = stream._finish(image, None).numpy()
        expected = tf.image.resize(image, (size, size), antialias=True).numpy()
        assert np.abs(view - np.clip(np.round(expected), 0, 255)).max() <= 1
