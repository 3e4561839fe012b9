import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd.augment import RandomResizedCrop


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _in_tf_data(layer, images, **kwargs):
    """Runs `layer` on one batch inside `tf.data.Dataset.map` (TF ops, any backend)."""
    dataset = tf.data.Dataset.from_tensors(images).map(lambda x: layer(x, **kwargs))
    return next(iter(dataset)).numpy()


def _torchvision_areas(count, size, scale, ratio, rng):
    """Area fractions drawn by a NumPy transcription of torchvision's loop."""
    areas = []
    for _ in range(count):
        for _ in range(10):
            area = size * size * rng.uniform(*scale)
            aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
            w = round(np.sqrt(area * aspect))
            h = round(np.sqrt(area / aspect))
            if 0 < w <= size and 0 < h <= size:
                areas.append(h * w / size**2)
                break
        else:
            areas.append(1.0)
    return np.array(areas)


def _coordinate_images(count, height, width):
    """Channel 0 holds the row index, channel 1 the column index."""
    rows, columns = np.meshgrid(
        np.arange(height, dtype="float32"),
        np.arange(width, dtype="float32"),
        indexing="ij",
    )
    image = np.stack([rows, columns, np.zeros_like(rows)], axis=-1)
    return np.repeat(image[None], count, axis=0)


def _recover_boxes(outputs):
    """Crop boxes (top, left, h, w) from bilinear crops of coordinate images.

    Output pixel i samples `top + (i + 0.5) h / out - 0.5`: a line in i whose slope
    gives h and whose intercept gives top (valid while h >= out, no clamping).
    """
    rows = outputs[:, :, 0, 0]  # (N, out_h)
    columns = outputs[:, 0, :, 1]  # (N, out_w)
    out_h, out_w = rows.shape[1], columns.shape[1]
    slope_h = (rows[:, -1] - rows[:, 0]) / (out_h - 1)
    slope_w = (columns[:, -1] - columns[:, 0]) / (out_w - 1)
    top = rows[:, 0] - 0.5 * slope_h + 0.5
    left = columns[:, 0] - 0.5 * slope_w + 0.5
    return np.stack([top, left, slope_h * out_h, slope_w * out_w], axis=1)


def _reference_crop_resize(image, box, out_h, out_w):
    """Float64 bilinear resize (half-pixel centres, edge clamp) of a crop."""
    top, left, height, width = (int(v) for v in box)
    crop = image[top : top + height, left : left + width].astype("float64")

    def axis_weights(size, out):
        position = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, size - 1)
        matrix = np.zeros((out, size))
        matrix[np.arange(out), low] += 1 - (position - low)
        matrix[np.arange(out), high] += position - low
        return matrix

    rows = axis_weights(height, out_h)
    columns = axis_weights(width, out_w)
    return np.einsum("yh,hwc,xw->yxc", rows, crop, columns)


# Eager calls share one input and output size: JAX compiles each op per shape.
IMAGES = np.random.default_rng(0).uniform(size=(3, 24, 32, 3)).astype("float32")
OUT = (12, 16)


def test_output_shapes():
    layer = RandomResizedCrop(*OUT, seed=0)
    assert tuple(_numpy(layer(IMAGES)).shape) == (3, 12, 16, 3)
    single = tf.data.Dataset.from_tensor_slices(IMAGES).map(layer)
    assert [tuple(x.shape) for x in single] == [(12, 16, 3)] * 3
    assert tuple(_numpy(layer(IMAGES, training=False)).shape) == (3, 12, 16, 3)
    assert layer.compute_output_shape((None, 24, 32, 3)) == (None, 12, 16, 3)
    uint8 = _in_tf_data(layer, (IMAGES * 255).astype("uint8"))
    assert uint8.dtype == np.float32 and uint8.shape == (3, 12, 16, 3)


def test_crop_boxes_follow_the_scale_and_ratio_ranges():
    count, size = 400, 64
    layer = RandomResizedCrop(4, 4, scale=(0.08, 1.0), seed=3)
    boxes = _recover_boxes(_in_tf_data(layer, _coordinate_images(count, size, size)))
    top, left, height, width = boxes.T
    # Crop sizes and corners are whole pixels.
    np.testing.assert_allclose(boxes, np.round(boxes), atol=2e-3)
    boxes = np.round(boxes)
    top, left, height, width = boxes.T
    assert top.min() >= 0 and left.min() >= 0
    assert (top + height).max() <= size and (left + width).max() <= size
    # Area and ratio ranges, up to the rounding of h and w to whole pixels.
    area = height * width / size**2
    ratio = width / height
    rounding = 1.0 / height + 1.0 / width + 1.0 / np.minimum(height, width) ** 2
    assert np.all(area >= 0.08 * (1 - rounding) - 1e-9)
    assert np.all(area <= 1.0)
    assert np.all(ratio >= 0.75 * (1 - 2 / height) - 1e-9)
    assert np.all(ratio <= 4 / 3 * (1 + 2 / width) + 1e-9)
    # Different images of one batch get different crops, spread over the range.
    assert len({tuple(b) for b in boxes}) > 0.9 * count
    assert area.min() < 0.15 and area.max() > 0.9
    assert ratio.min() < 0.8 and ratio.max() > 1.25


def test_area_distribution_matches_torchvision():
    count, size = 2000, 64
    layer = RandomResizedCrop(4, 4, scale=(0.2, 1.0), seed=5)
    boxes = np.round(
        _recover_boxes(_in_tf_data(layer, _coordinate_images(count, size, size)))
    )
    area = boxes[:, 2] * boxes[:, 3] / size**2
    reference = _torchvision_areas(
        20000, size, (0.2, 1.0), (3 / 4, 4 / 3), np.random.default_rng(0)
    )
    # Redrawn large crops that do not fit pull the mean below 0.6 (U(0.2, 1)).
    assert abs(area.mean() - reference.mean()) < 0.025
    for q in (0.1, 0.5, 0.9):
        assert abs(np.quantile(area, q) - np.quantile(reference, q)) < 0.04
    ratio = boxes[:, 3] / boxes[:, 2]
    assert abs(np.mean(np.log(ratio))) < 0.03  # log-uniform, centred on 0


@pytest.mark.parametrize(
    "shape, scale, ratio, expected",
    [
        # A square crop cannot hold a 2:1 ratio at full area: full width, h = W / 2.
        ((64, 64), (1.0, 1.0), (2.0, 3.0), (16, 0, 32, 64)),
        # Wider than 1:1 at full area never fits 40 x 60: centred 40 x 40.
        ((40, 60), (1.0, 1.0), (1.0, 1.0), (0, 10, 40, 40)),
    ],
)
def test_fallback_is_a_centre_crop(shape, scale, ratio, expected):
    layer = RandomResizedCrop(4, 4, scale=scale, ratio=ratio, seed=0)
    images = _coordinate_images(5, *shape)
    boxes = np.round(_recover_boxes(_in_tf_data(layer, images)))
    np.testing.assert_array_equal(boxes, np.tile(expected, (5, 1)))


def test_bilinear_crop_matches_a_float64_reference():
    boxes = np.array([[2, 3, 9, 11], [0, 0, 24, 32], [5, 1, 3, 30]], "float32")
    layer = RandomResizedCrop(*OUT)
    outputs = _numpy(layer.transform_images(IMAGES, {"boxes": boxes}))
    for image, box, output in zip(IMAGES, boxes, outputs):
        expected = _reference_crop_resize(image, box, *OUT)
        np.testing.assert_allclose(output, expected, atol=1e-5)


def test_nearest_interpolation_takes_pixels_of_the_crop():
    images = _coordinate_images(50, 32, 32)
    layer = RandomResizedCrop(8, 8, interpolation="nearest", seed=2)
    outputs = _in_tf_data(layer, images)
    np.testing.assert_array_equal(outputs, np.round(outputs))


def test_inference_is_a_deterministic_centre_crop_and_resize():
    layer = RandomResizedCrop(*OUT, seed=0)
    first = _numpy(layer(IMAGES, training=False))
    np.testing.assert_array_equal(first, _numpy(layer(IMAGES, training=False)))
    # Largest centred 3:4 crop of a 24 x 32 image is the whole image.
    expected = _reference_crop_resize(IMAGES[1], (0, 0, 24, 32), *OUT)
    np.testing.assert_allclose(first[1], expected, atol=1e-5)
    # Largest centred square of a 24 x 32 image: rows 0-23, columns 4-27.
    square = _in_tf_data(RandomResizedCrop(12, 12), IMAGES, training=False)
    expected = _reference_crop_resize(IMAGES[1], (0, 4, 24, 24), 12, 12)
    np.testing.assert_allclose(square[1], expected, atol=1e-5)


def test_seeds_make_crops_reproducible():
    first = _numpy(RandomResizedCrop(*OUT, seed=11)(IMAGES))
    second = _numpy(RandomResizedCrop(*OUT, seed=11)(IMAGES))
    other = _numpy(RandomResizedCrop(*OUT, seed=12)(IMAGES))
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)
    # Identical images in a batch are cropped differently.
    same = np.repeat(IMAGES[:1], 3, axis=0)
    outputs = _numpy(RandomResizedCrop(*OUT, seed=11)(same))
    assert not np.allclose(outputs[0], outputs[1])


def test_channels_first_matches_channels_last():
    last = _in_tf_data(RandomResizedCrop(*OUT), IMAGES, training=False)
    layer = RandomResizedCrop(*OUT, data_format="channels_first")
    first = _in_tf_data(layer, np.transpose(IMAGES, (0, 3, 1, 2)), training=False)
    np.testing.assert_allclose(np.transpose(first, (0, 2, 3, 1)), last, atol=1e-6)


def test_runs_inside_tf_data_map():
    images = np.random.default_rng(5).uniform(size=(8, 40, 40, 3)).astype("float32")
    layer = RandomResizedCrop(16, 16, scale=(0.2, 1.0), seed=0)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4).map(layer)
    assert dataset.element_spec.shape.as_list() == [None, 16, 16, 3]
    batches = [batch.numpy() for batch in dataset]
    assert [b.shape for b in batches] == [(4, 16, 16, 3)] * 2
    assert all(0.0 <= b.min() and b.max() <= 1.0 for b in batches)


def test_horizontal_flip_mirrors_half_of_the_crops():
    boxes = np.array([[2, 3, 9, 11], [0, 0, 24, 32], [5, 1, 3, 30]], "float32")
    flip = np.array([True, False, True])
    layer = RandomResizedCrop(*OUT, horizontal_flip=True)
    outputs = _numpy(layer.transform_images(IMAGES, {"boxes": boxes, "flip": flip}))
    for image, box, mirrored, output in zip(IMAGES, boxes, flip, outputs):
        expected = _reference_crop_resize(image, box, *OUT)
        expected = expected[:, ::-1] if mirrored else expected
        np.testing.assert_allclose(output, expected, atol=1e-5)
    # Drawn per image with probability 1/2: compare with the unflipped crop.
    images = np.random.default_rng(3).uniform(size=(400, 10, 10, 1)).astype("float32")
    flipping = RandomResizedCrop(
        10, 10, scale=(1.0, 1.0), ratio=(1.0, 1.0), horizontal_flip=True, seed=1
    )
    outputs = _in_tf_data(flipping, images)
    mirrored = np.all(
        np.isclose(outputs, images[:, :, ::-1], atol=1e-6), axis=(1, 2, 3)
    )
    kept = np.all(np.isclose(outputs, images, atol=1e-6), axis=(1, 2, 3))
    assert np.all(mirrored ^ kept)
    # Binomial(400, 1/2): std of the fraction 0.025; bound at 5 std.
    assert abs(mirrored.mean() - 0.5) < 0.125
    # Inference never flips.
    np.testing.assert_allclose(
        _in_tf_data(flipping, images, training=False), images, atol=1e-6
    )


def test_config_round_trip():
    layer = RandomResizedCrop(
        12,
        16,
        scale=(0.2, 0.9),
        ratio=(0.5, 2.0),
        interpolation="nearest",
        horizontal_flip=True,
        seed=4,
    )
    config = layer.get_config()
    for key, value in {
        "height": 12,
        "width": 16,
        "scale": (0.2, 0.9),
        "ratio": (0.5, 2.0),
        "interpolation": "nearest",
        "horizontal_flip": True,
        "seed": 4,
    }.items():
        assert config[key] == value
    assert RandomResizedCrop.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, RandomResizedCrop)
    np.testing.assert_array_equal(
        _in_tf_data(restored, IMAGES), _in_tf_data(layer, IMAGES)
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"scale": (0.0, 1.0)}, ValueError, "scale"),
        ({"scale": (0.5, 0.2)}, ValueError, "scale"),
        ({"scale": (0.1, 1.5)}, ValueError, r"scale=\(0.1, 1.5\)"),
        ({"scale": 0.5}, TypeError, "scale"),
        ({"ratio": (0.0, 1.0)}, ValueError, "ratio"),
        ({"ratio": (2.0, 1.0)}, ValueError, "ratio"),
        ({"interpolation": "bicubic"}, ValueError, "bicubic"),
        ({"height": 0}, ValueError, "height=0"),
        ({"width": 3.5}, TypeError, "width=3.5"),
        ({"horizontal_flip": 0.5}, TypeError, "horizontal_flip=0.5"),
    ],
)
def test_invalid_arguments_are_named(kwargs, error, match):
    arguments = {"height": 8, "width": 8, **kwargs}
    with pytest.raises(error, match=match):
        RandomResizedCrop(**arguments)
