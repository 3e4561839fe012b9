"""Image augmentations and the published two-view pipelines.

Images are float32 in [0, 1], channels last. Every layer here runs inside
`tf.data.Dataset.map` under the TensorFlow, JAX and PyTorch backends, draws its
randomness per image from a `keras.random.SeedGenerator`, acts only when `training`
is true, and round-trips through `get_config`/`from_config`.

Inside `tf.data` the layers compute with TensorFlow ops, and each chain of
element-wise steps runs as one XLA-compiled function per layer (the colour
jitter one image at a time, while the image sits in the CPU cache); the blur
is a depthwise convolution, and `RandomApply` at low rates transforms only the
images it selects. The Benchmarks page compares the views' throughput with a
per-image Pillow pipeline.
"""

from keras_imsvd.augment.color_jitter import ColorJitter
from keras_imsvd.augment.flip_grayscale import RandomFlip
from keras_imsvd.augment.flip_grayscale import RandomGrayscale
from keras_imsvd.augment.gaussian_blur import GaussianBlur
from keras_imsvd.augment.gaussian_blur import default_kernel_size
from keras_imsvd.augment.random_apply import RandomApply
from keras_imsvd.augment.random_resized_crop import RandomResizedCrop
from keras_imsvd.augment.solarize import Solarize
from keras_imsvd.augment.views import apply_views
from keras_imsvd.augment.views import cifar_views
from keras_imsvd.augment.views import default_views
from keras_imsvd.augment.views import digits_views
from keras_imsvd.augment.views import imagenet_views

__all__ = [
    "ColorJitter",
    "GaussianBlur",
    "RandomApply",
    "RandomFlip",
    "RandomGrayscale",
    "RandomResizedCrop",
    "Solarize",
    "apply_views",
    "cifar_views",
    "default_kernel_size",
    "default_views",
    "digits_views",
    "imagenet_views",
]
