"""Encoders for IMSVD: models that map images to feature vectors."""

import keras
from keras import layers


def _check_shape(input_shape):
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != 3
        or not all(isinstance(d, int) and d > 0 for d in input_shape)
    ):
        raise ValueError(
            "`input_shape` must be (height, width, channels) of positive integers. "
            f"Received: input_shape={input_shape!r}"
        )
    return tuple(input_shape)


def _basic_block(x, filters, stride, name):
    shortcut = x
    x = layers.Conv2D(filters, 3, stride, "same", use_bias=False, name=f"{name}_conv1")(
        x
    )
    x = layers.BatchNormalization(name=f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = layers.Conv2D(filters, 3, 1, "same", use_bias=False, name=f"{name}_conv2")(x)
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(
            filters, 1, stride, use_bias=False, name=f"{name}_proj_conv"
        )(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(x)


def resnet18_cifar(input_shape=(32, 32, 3), width=64, name="resnet18_cifar"):
    """ResNet-18 with the CIFAR stem, pooled to a `8 * width`-d feature.

    The stem is a single 3x3 convolution with stride 1 and no max-pooling (the
    usual adaptation of ResNet to 32x32 images, used by the published CIFAR-10
    setting of IMSVD). Four stages of two basic blocks follow, with
    `width, 2 width, 4 width, 8 width` filters, then global average pooling.

    Args:
        input_shape: Image shape `(height, width, channels)`. Defaults to
            `(32, 32, 3)`.
        width: Filters of the first stage. Defaults to `64` (a 512-d feature).
        name: Model name. Defaults to `"resnet18_cifar"`.

    Returns:
        A functional `keras.Model` from images to `(N, 8 * width)` features.

    Example:

    >>> import keras_imsvd
    >>> keras_imsvd.backbones.resnet18_cifar(width=8).output_shape
    (None, 64)

    References:
        He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition".
        https://arxiv.org/abs/1512.03385
    """
    input_shape = _check_shape(input_shape)
    if not isinstance(width, int) or width < 1:
        raise ValueError(
            f"`width` must be a positive integer. Received: width={width!r}"
        )
    inputs = keras.Input(input_shape, name="images")
    x = layers.Conv2D(width, 3, 1, "same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, multiplier in enumerate((1, 2, 4, 8)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(
                x, width * multiplier, stride, f"stage{stage}_block{block}"
            )
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet50(input_shape=(224, 224, 3), name="resnet50"):
    """ResNet-50 from `keras.applications`, randomly initialised, pooled to 2048-d.

    Args:
        input_shape: Image shape. Defaults to `(224, 224, 3)`.
        name: Model name. Defaults to `"resnet50"`.

    Returns:
        A `keras.Model` from images to `(N, 2048)` features (`weights=None`,
        `include_top=False`, `pooling="avg"`).

    Example:

    >>> import keras_imsvd
    >>> keras_imsvd.backbones.resnet50(input_shape=(64, 64, 3)).output_shape
    (None, 2048)
    """
    input_shape = _check_shape(input_shape)
    base = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=input_shape, pooling="avg"
    )
    return keras.Model(base.input, base.output, name=name)


def small_convnet(input_shape=(16, 16, 1), widths=(32, 64, 128), name="small_convnet"):
    """A small, fast convnet for CPU work and tests.

    Each width gives a block `Conv2D(3x3) -> BatchNorm -> ReLU -> MaxPool(2)`
    (the pooling is skipped once the feature map is 2x2 or smaller); global
    average pooling gives a `widths[-1]`-d feature.

    Args:
        input_shape: Image shape. Defaults to `(16, 16, 1)` (the bundled digits
            upsampled to 16x16).
        widths: Filters per block. Defaults to `(32, 64, 128)`.
        name: Model name. Defaults to `"small_convnet"`.

    Returns:
        A functional `keras.Model` from images to `(N, widths[-1])` features.

    Example:

    >>> import keras_imsvd
    >>> keras_imsvd.backbones.small_convnet().output_shape
    (None, 128)
    """
    input_shape = _check_shape(input_shape)
    widths = tuple(widths)
    if not widths or not all(isinstance(w, int) and w > 0 for w in widths):
        raise ValueError(
            f"`widths` must be positive integers. Received: widths={widths!r}"
        )
    inputs = keras.Input(input_shape, name="images")
    x = inputs
    size = min(input_shape[0], input_shape[1])
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if size > 2:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
            size //= 2
    outputs = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, outputs, name=name)
