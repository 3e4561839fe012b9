import colorsys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd.augment import ColorJitter

IMAGES = np.random.default_rng(0).uniform(size=(6, 5, 7, 3)).astype("float32")
LUMA = np.array([0.2989, 0.587, 0.114])


def _in_tf_data(function, images):
    dataset = tf.data.Dataset.from_tensors(images).map(function)
    return tf.nest.map_structure(lambda x: x.numpy(), next(iter(dataset)))


def _reference(image, order, factors):
    """torchvision's ColorJitter on one float64 image, operations in `order`."""
    x = image.astype("float64")
    for operation in order:
        factor = factors[operation]
        if operation == 0:  # brightness
            x = np.clip(factor * x, 0, 1)
        elif operation == 1:  # contrast, against the mean gray level
            mean = (x @ LUMA).mean()
            x = np.clip(factor * x + (1 - factor) * mean, 0, 1)
        elif operation == 2:  # saturation
            gray = (x @ LUMA)[..., None]
            x = np.clip(factor * x + (1 - factor) * gray, 0, 1)
        else:  # hue, through HSV
            hsv = np.array([colorsys.rgb_to_hsv(*p) for p in x.reshape(-1, 3)])
            hsv[:, 0] = (hsv[:, 0] + factor) % 1.0
            rgb = [colorsys.hsv_to_rgb(*p) for p in hsv]
            x = np.array(rgb).reshape(x.shape)
    return x


def test_matches_torchvision_operations_in_every_order():
    rng = np.random.default_rng(1)
    count = len(IMAGES)
    orders = np.array([rng.permutation(4) for _ in range(count)], "int32")
    orders[0], orders[1] = [0, 1, 2, 3], [3, 2, 1, 0]
    factors = np.stack(
        [
            rng.uniform(0.6, 1.4, count),
            rng.uniform(0.6, 1.4, count),
            rng.uniform(0.6, 1.4, count),
            rng.uniform(-0.1, 0.1, count),
        ],
        axis=1,
    ).astype("float32")
    transformation = {
        "brightness": factors[:, 0],
        "contrast": factors[:, 1],
        "saturation": factors[:, 2],
        "hue": factors[:, 3],
        "order": orders,
    }
    layer = ColorJitter(0.4, 0.4, 0.4, 0.1)
    outputs = keras.ops.convert_to_numpy(layer.transform_images(IMAGES, transformation))
    for image, order, factor, output in zip(IMAGES, orders, factors, outputs):
        np.testing.assert_allclose(output, _reference(image, order, factor), atol=2e-5)


def test_zero_strength_is_the_identity():
    layer = ColorJitter(0.0, 0.0, 0.0, 0.0, seed=0)
    np.testing.assert_allclose(_in_tf_data(layer, IMAGES), IMAGES, atol=1e-6)


def test_factors_are_drawn_per_image_in_their_ranges():
    # Brightness alone on a flat 0.5 image: output 0.5 b with b ~ U(0.6, 1.4).
    layer = ColorJitter(0.4, 0.0, 0.0, 0.0, seed=1)
    flat = np.full((2000, 2, 2, 3), 0.5, "float32")
    factors = _in_tf_data(layer, flat)[:, 0, 0, 0] / 0.5
    assert 0.6 - 1e-5 <= factors.min() < 0.62 and 1.38 < factors.max() <= 1.4 + 1e-5
    assert abs(factors.mean() - 1.0) < 0.02  # std of the mean: 0.005
    assert len(np.unique(np.round(factors, 5))) > 1900


def test_outputs_stay_in_range_and_differ_per_image():
    layer = ColorJitter(0.4, 0.4, 0.4, 0.1, seed=2)
    same = np.repeat(IMAGES[:1], 4, axis=0)
    outputs = _in_tf_data(layer, same)
    assert outputs.dtype == np.float32 and outputs.shape == same.shape
    assert outputs.min() >= 0.0 and outputs.max() <= 1.0
    assert not np.allclose(outputs[0], outputs[1])


def test_value_range_scales_the_operations():
    layer = ColorJitter(0.4, 0.4, 0.4, 0.1, value_range=(0, 255))
    unit = ColorJitter(0.4, 0.4, 0.4, 0.1)
    transformation = unit.get_random_transformation(IMAGES)
    scaled = layer.transform_images(IMAGES * 255.0, transformation)
    expected = unit.transform_images(IMAGES, transformation)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(scaled) / 255.0,
        keras.ops.convert_to_numpy(expected),
        atol=1e-5,
    )


def test_one_channel_images_ignore_saturation_and_hue():
    layer = ColorJitter(0.0, 0.0, 0.4, 0.1, seed=3)
    gray = IMAGES[..., :1]
    np.testing.assert_allclose(_in_tf_data(layer, gray), gray, atol=1e-6)


def test_inference_is_the_identity():
    layer = ColorJitter(seed=0)
    outputs = _in_tf_data(lambda x: layer(x, training=False), IMAGES)
    np.testing.assert_array_equal(outputs, IMAGES)


def test_config_round_trip():
    layer = ColorJitter((0.5, 1.5), 0.3, 0.2, (-0.05, 0.1), seed=7)
    config = layer.get_config()
    assert config["brightness"] == (0.5, 1.5) and config["contrast"] == 0.3
    assert config["hue"] == (-0.05, 0.1) and config["seed"] == 7
    assert ColorJitter.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    np.testing.assert_array_equal(
        _in_tf_data(restored, IMAGES), _in_tf_data(layer, IMAGES)
    )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"brightness": -0.1}, ValueError, "brightness=-0.1"),
        ({"contrast": (1.2, 0.8)}, ValueError, "contrast"),
        ({"saturation": "high"}, TypeError, "saturation"),
        ({"hue": 0.6}, ValueError, "hue=0.6"),
        ({"hue": (-0.6, 0.1)}, ValueError, "hue"),
        ({"value_range": (1, 1)}, ValueError, "value_range"),
    ],
)
def test_invalid_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        ColorJitter(**kwargs)


def test_four_channel_images_are_refused():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        ColorJitter(seed=0)(np.zeros((1, 4, 4, 4), "float32"))


def _transform_with_tensorflow_ops(layer, images, transformation):
    """`transform_images` inside tf.data, where the layer computes with TF ops."""

    def transform(x):
        layer.backend.set_backend("tensorflow")
        try:
            return layer.transform_images(
                x, {k: tf.constant(v) for k, v in transformation.items()}
            )
        finally:
            layer.backend.reset()

    return _in_tf_data(transform, images)


def _random_transformation(rng, count):
    return {
        "brightness": rng.uniform(0.6, 1.4, count).astype("float32"),
        "contrast": rng.uniform(0.6, 1.4, count).astype("float32"),
        "saturation": rng.uniform(0.6, 1.4, count).astype("float32"),
        "hue": rng.uniform(-0.1, 0.1, count).astype("float32"),
        "order": np.array([rng.permutation(4) for _ in range(count)], "int32"),
    }


def test_per_image_tensorflow_path_matches_torchvision():
    # TF ops (tf.data, or the TensorFlow backend) run one image at a time under
    # XLA; the other backends run the batched blend passes. Both match.
    rng = np.random.default_rng(4)
    transformation = _random_transformation(rng, len(IMAGES))
    layer = ColorJitter(0.4, 0.4, 0.4, 0.1)
    outputs = _transform_with_tensorflow_ops(layer, IMAGES, transformation)
    batched = keras.ops.convert_to_numpy(layer.transform_images(IMAGES, transformation))
    for index, (image, output) in enumerate(zip(IMAGES, outputs)):
        order = transformation["order"][index]
        factors = [transformation[k][index] for k in layer._ranges]
        np.testing.assert_allclose(output, _reference(image, order, factors), atol=2e-5)
    np.testing.assert_allclose(outputs, batched, atol=2e-5)


def test_apply_mask_leaves_the_other_images_untouched():
    rng = np.random.default_rng(5)
    transformation = _random_transformation(rng, len(IMAGES))
    apply = np.array([True, False, True, False, False, True])
    layer = ColorJitter(0.4, 0.4, 0.4, 0.1)
    full = _transform_with_tensorflow_ops(layer, IMAGES, transformation)
    masked_tf = _transform_with_tensorflow_ops(
        layer, IMAGES, {**transformation, "apply": apply}
    )
    masked = keras.ops.convert_to_numpy(
        layer.transform_images(IMAGES, {**transformation, "apply": apply})
    )
    for outputs in (masked_tf, masked):
        np.testing.assert_array_equal(outputs[~apply], IMAGES[~apply])
        np.testing.assert_allclose(outputs[apply], full[apply], atol=2e-5)
    assert np.abs(full[apply] - IMAGES[apply]).max() > 0.01
