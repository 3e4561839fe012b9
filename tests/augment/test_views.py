import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd.augment import GaussianBlur
from keras_imsvd.augment import RandomApply
from keras_imsvd.augment import Solarize
from keras_imsvd.augment import apply_views
from keras_imsvd.augment import cifar_views
from keras_imsvd.augment import default_views
from keras_imsvd.augment import digits_views
from keras_imsvd.augment import imagenet_views

RNG = np.random.default_rng(0)


def _views_in_tf_data(views, images, batch_size):
    dataset = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(batch_size, drop_remainder=True)
        .map(lambda x: apply_views(x, views), num_parallel_calls=tf.data.AUTOTUNE)
    )
    return dataset, [tf.nest.map_structure(lambda x: x.numpy(), b) for b in dataset]


@pytest.mark.parametrize(
    "preset, in_shape, out_shape",
    [
        (cifar_views, (32, 32, 3), (32, 32, 3)),
        (lambda seed: imagenet_views(48, seed=seed), (56, 64, 3), (48, 48, 3)),
        (digits_views, (8, 8, 1), (16, 16, 1)),
    ],
)
def test_presets_run_inside_tf_data(preset, in_shape, out_shape):
    views = preset(seed=0)
    assert all(isinstance(v, keras.layers.Pipeline) for v in views)
    # Eight copies of one image: views must still differ per image.
    image = RNG.uniform(size=(1,) + in_shape).astype("float32")
    dataset, batches = _views_in_tf_data(views, np.repeat(image, 16, axis=0), 8)
    assert dataset.element_spec["view_1"].shape.as_list() == [8, *out_shape]
    assert len(batches) == 2
    for batch in batches:
        for view in ("view_1", "view_2"):
            assert batch[view].dtype == np.float32
            assert batch[view].shape == (8, *out_shape)
            assert batch[view].min() >= -1e-6 and batch[view].max() <= 1.0 + 1e-6
            flat = batch[view].reshape(8, -1)
            distances = np.abs(flat[:, None] - flat[None]).mean(-1)
            assert np.all(distances[~np.eye(8, dtype=bool)] > 1e-4)
        assert not np.allclose(batch["view_1"], batch["view_2"])


def test_imagenet_views_are_asymmetric():
    view_1, view_2 = imagenet_views(seed=0)
    assert isinstance(view_1.layers[-1], GaussianBlur)
    assert view_1.layers[-1].kernel_size == 23
    assert not any(isinstance(layer, Solarize) for layer in view_1.layers)
    blur, solarize = view_2.layers[-2:]
    assert isinstance(blur, RandomApply) and isinstance(blur.layer, GaussianBlur)
    assert blur.rate == 0.1
    assert isinstance(solarize, RandomApply) and isinstance(solarize.layer, Solarize)
    assert solarize.rate == 0.2
    jitter = view_1.layers[1]
    assert jitter.rate == 0.8 and jitter.layer.saturation == 0.2
    assert view_1.layers[0].scale == (0.08, 1.0)
    assert cifar_views()[0].layers[0].scale == (0.2, 1.0)
    assert cifar_views()[0].layers[1].layer.saturation == 0.4
    # The crop flips half of the images itself (no separate flip layer).
    for view in (view_1, view_2, *cifar_views()):
        assert view.layers[0].horizontal_flip


def test_seeds_are_distinct_per_layer_and_view():
    view_1, view_2 = cifar_views(seed=10)
    seeds = [layer.seed for view in (view_1, view_2) for layer in view.layers]
    assert len(set(seeds)) == len(seeds)
    assert [layer.seed for layer in cifar_views(seed=10)[0].layers] == seeds[:3]
    assert all(layer.seed is None for layer in cifar_views()[0].layers)


def test_pipelines_round_trip_through_config():
    view = imagenet_views(64, seed=3)[1]
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(view)
    )
    assert [type(layer) for layer in restored.layers] == [
        type(layer) for layer in view.layers
    ]
    assert restored.layers[-1].layer.get_config() == view.layers[-1].layer.get_config()


def test_default_views_pick_a_preset_from_the_shape():
    assert default_views((8, 8, 1))[0].name == "digits_view_1"
    assert default_views((32, 32, 3))[0].name == "cifar_view_1"
    assert default_views((96, 96, 3))[0].name == "imagenet_view_1"
    with pytest.raises(ValueError, match="image_shape"):
        default_views((32, 32, 4))


@pytest.mark.parametrize("preset", [cifar_views, imagenet_views, digits_views])
def test_invalid_arguments_are_named(preset):
    with pytest.raises(ValueError, match="image_size=0"):
        preset(image_size=0)
    with pytest.raises(TypeError, match="image_size=32.0"):
        preset(image_size=32.0)
    with pytest.raises(TypeError, match="seed='a'"):
        preset(seed="a")


def test_a_keras_cv_layer_drops_into_a_view_pipeline():
    keras_cv = pytest.importorskip("keras_cv")
    crop = keras_cv.layers.RandomCropAndResize(
        target_size=(24, 24),
        crop_area_factor=(0.2, 1.0),
        aspect_ratio_factor=(3 / 4, 4 / 3),
    )
    view = keras.layers.Pipeline([crop, keras.layers.RandomFlip("horizontal")])
    images = RNG.uniform(size=(4, 32, 32, 3)).astype("float32")
    _, batches = _views_in_tf_data((view, view), images, 4)
    assert batches[0]["view_1"].shape == (4, 24, 24, 3)
