"""The code of the page "Bring your own encoder and data" (docs/byo.md).

The page shows the sections between the `--8<--` markers, so what it shows is
what runs here. Every example trains for one step on the bundled digits or on
random stand-in data, and nothing is downloaded: TFDS runs on generated mock
data, and the KerasHub example (skipped when keras-hub is not installed) builds
its backbone from arguments, with random weights. Run it under each backend:

    KERAS_BACKEND=jax python docs/_snippets/byo.py
    KERAS_BACKEND=torch python docs/_snippets/byo.py
    KERAS_BACKEND=tensorflow python docs/_snippets/byo.py
"""

# ruff: noqa: E402  (imports stay inside the sections the page shows)
import importlib.util

# --8<-- [start:setup]
import keras
import numpy as np

import keras_imsvd

(x_train, y_train), _ = keras_imsvd.data.load_digits_split()  # (1400, 8, 8, 1)
views = keras_imsvd.augment.digits_views(seed=0)  # two random 16x16 views of a digit


def imsvd(encoder):
    """An IMSVD model around an encoder from images to (N, F) features."""
    model = keras_imsvd.IMSVDModel(encoder, projector="512-512", bin_size=16)
    model.compile(optimizer="adam")
    return model


# --8<-- [end:setup]

print(f"backend: {keras.backend.backend()}")

# --8<-- [start:applications]
inputs = keras.Input((32, 32, 1))
scaled = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)  # [0, 1] -> [-1, 1]
features = keras.applications.ResNet50V2(
    include_top=False,  # no classifier
    weights=None,  # random initial weights
    input_shape=(32, 32, 1),
    pooling="avg",  # (N, 1, 1, 2048) -> (N, 2048)
)(scaled)
encoder = keras.Model(inputs, features, name="resnet50v2_encoder")

views_32 = keras_imsvd.augment.digits_views(image_size=32, seed=0)
dataset = keras_imsvd.data.multiview_dataset(x_train, views_32, batch_size=64, seed=0)
imsvd(encoder).fit(dataset, epochs=1, steps_per_epoch=1)
# --8<-- [end:applications]

if importlib.util.find_spec("keras_hub") is None:
    print("keras-hub is not installed: the KerasHub example is skipped")
else:
    # --8<-- [start:keras_hub]
    import keras_hub

    # A ResNet-18 layout, built from its arguments: random weights, no download.
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[2, 2, 2, 2],
        stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(32, 32, 1),
    )
    inputs = keras.Input((32, 32, 1))
    feature_map = backbone(inputs)  # (N, 1, 1, 512)
    features = keras.layers.GlobalAveragePooling2D()(feature_map)  # (N, 512)
    encoder = keras.Model(inputs, features, name="keras_hub_resnet18")

    imsvd(encoder).fit(dataset, epochs=1, steps_per_epoch=1)
    # --8<-- [end:keras_hub]

# --8<-- [start:multiview_dataset]
dataset = keras_imsvd.data.multiview_dataset(x_train, views, batch_size=128, seed=0)
print(next(iter(dataset)).keys())  # dict_keys(['view_1', 'view_2'])
imsvd(keras_imsvd.backbones.small_convnet()).fit(dataset, epochs=1, steps_per_epoch=1)
# --8<-- [end:multiview_dataset]

# --8<-- [start:numpy]
pair = keras_imsvd.augment.apply_views(x_train[:256], views)  # drawn once
x1 = keras.ops.convert_to_numpy(pair["view_1"])  # (256, 16, 16, 1)
x2 = keras.ops.convert_to_numpy(pair["view_2"])

model = imsvd(keras_imsvd.backbones.small_convnet())
model.fit({"view_1": x1, "view_2": x2}, batch_size=128, epochs=1)
model.fit((x1, x2), batch_size=128, epochs=1)  # a tuple or list of the two views
# --8<-- [end:numpy]

# --8<-- [start:tf_data]
import tensorflow as tf

dataset = (
    tf.data.Dataset.from_tensor_slices(x_train)
    .shuffle(len(x_train))
    .batch(128, drop_remainder=True)  # no last batch of one image
    .map(lambda images: keras_imsvd.augment.apply_views(images, views))
    .prefetch(tf.data.AUTOTUNE)
)
imsvd(keras_imsvd.backbones.small_convnet()).fit(dataset, epochs=1, steps_per_epoch=1)

# The same batches as ((x1, x2),): a tuple of one element, the pair of views.
pairs = dataset.map(lambda views: ((views["view_1"], views["view_2"]),))
imsvd(keras_imsvd.backbones.small_convnet()).fit(pairs, epochs=1, steps_per_epoch=1)
# --8<-- [end:tf_data]

# --8<-- [start:labels]
labelled = keras_imsvd.data.multiview_dataset(
    (x_train, y_train), views, batch_size=128, labels=True, seed=0
)  # ({"view_1": x1, "view_2": x2}, y): fit ignores y
imsvd(keras_imsvd.backbones.small_convnet()).fit(labelled, epochs=1, steps_per_epoch=1)
# --8<-- [end:labels]

import tensorflow_datasets as tfds

with tfds.testing.mock_data(num_examples=256):  # random stand-in images, no download
    # --8<-- [start:tfds]
    mnist_views = keras_imsvd.augment.digits_views(image_size=28, seed=0)
    dataset = keras_imsvd.data.multiview_dataset(
        "mnist", mnist_views, batch_size=128, split="train", seed=0
    )
    imsvd(keras_imsvd.backbones.small_convnet(input_shape=(28, 28, 1))).fit(
        dataset, epochs=1, steps_per_epoch=1
    )

    # Or load it yourself, e.g. to filter or to cache it first:
    images = keras_imsvd.data.tfds_dataset("mnist", split="train[:50%]")
    dataset = keras_imsvd.data.multiview_dataset(images, mnist_views, batch_size=64)
    # --8<-- [end:tfds]
    imsvd(keras_imsvd.backbones.small_convnet(input_shape=(28, 28, 1))).fit(
        dataset, epochs=1, steps_per_epoch=1
    )


# --8<-- [start:py_dataset]
class TwoViews(keras.utils.PyDataset):
    """Batches of two new random views of each image, reshuffled every epoch."""

    def __init__(self, images, views, batch_size, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.images = images
        self.views = views
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images))

    def __len__(self):
        return len(self.images) // self.batch_size  # whole batches only

    def __getitem__(self, index):
        start = index * self.batch_size
        rows = self.order[start : start + self.batch_size]
        pair = keras_imsvd.augment.apply_views(self.images[rows], self.views)
        return {key: keras.ops.convert_to_numpy(value) for key, value in pair.items()}

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.images))


batches = TwoViews(x_train, views, batch_size=128, seed=0)
imsvd(keras_imsvd.backbones.small_convnet()).fit(batches, epochs=1, steps_per_epoch=1)
# --8<-- [end:py_dataset]

# --8<-- [start:torch]
import torch


def random_view(image):
    """(H, W, C) -> a copy shifted by up to one pixel, at 70-100% contrast."""
    shift = torch.randint(-1, 2, (2,)).tolist()
    contrast = torch.empty(()).uniform_(0.7, 1.0)
    return torch.roll(image, shifts=shift, dims=(0, 1)) * contrast


class TwoViewDigits(torch.utils.data.Dataset):
    """Each item: ({"view_1": v1, "view_2": v2},), two views of one image."""

    def __init__(self, images):
        self.images = torch.from_numpy(images)  # (N, 8, 8, 1)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index]  # channels last, as Keras expects
        return ({"view_1": random_view(image), "view_2": random_view(image)},)


loader = torch.utils.data.DataLoader(
    TwoViewDigits(x_train), batch_size=128, shuffle=True, drop_last=True
)  # batches [{"view_1": (128, 8, 8, 1), "view_2": (128, 8, 8, 1)}]
encoder = keras_imsvd.backbones.small_convnet(input_shape=(8, 8, 1))
imsvd(encoder).fit(loader, epochs=1, steps_per_epoch=1)
# --8<-- [end:torch]

print("all examples ran")
