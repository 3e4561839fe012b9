"""Encoders for IMSVD: models that map images to feature vectors.

The layers start as in the published PyTorch code: BatchNorm with epsilon
1e-5 and momentum 0.9 (torch's momentum 0.1), and, for ResNet-50, the
torchvision initialisation (kaiming-normal fan-out convolutions, the last
BatchNorm of each residual block starting at zero). Their BatchNorm layers are
`keras_imsvd.layers.SyncBatchNormalization`: in data-parallel training they
use the statistics of the global batch, as the published code's
`torch.nn.SyncBatchNorm` does, and are `keras.layers.BatchNormalization`
otherwise.
"""

import keras
from keras import layers

from keras_imsvd.layers.sync_batch_normalization import SyncBatchNormalization

# Per-channel (mean, std) of the input normalisation of the published recipes.
NORMALIZATIONS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


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


def _check_batch_norm(epsilon, momentum, synchronized=True):
    if not isinstance(synchronized, bool):
        raise TypeError(
            "`batch_norm_synchronized` must be True or False. "
            f"Received: batch_norm_synchronized={synchronized!r}"
        )
    for name, value in (
        ("batch_norm_epsilon", epsilon),
        ("batch_norm_momentum", momentum),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not epsilon > 0:
        raise ValueError(
            "`batch_norm_epsilon` must be > 0. "
            f"Received: batch_norm_epsilon={epsilon!r}"
        )
    if not 0 <= momentum < 1:
        raise ValueError(
            "`batch_norm_momentum` must lie in [0, 1). "
            f"Received: batch_norm_momentum={momentum!r}"
        )


def _normalization_layer(normalization, channels):
    """A `Normalization` layer for `normalization`, or `None`."""
    if normalization is None:
        return None
    if isinstance(normalization, str):
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                "`normalization` must be None, one of "
                f"{sorted(NORMALIZATIONS)} or a pair (mean, std). "
                f"Received: normalization={normalization!r}"
            )
        mean, std = NORMALIZATIONS[normalization]
    elif isinstance(normalization, (tuple, list)) and len(normalization) == 2:
        mean, std = (tuple(float(v) for v in part) for part in normalization)
    else:
        raise TypeError(
            "`normalization` must be None, a name or a pair (mean, std). "
            f"Received: normalization={normalization!r}"
        )
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ValueError(
            f"`normalization` must give one mean and one positive std per channel "
            f"({channels}). Received: normalization={normalization!r}"
        )
    return layers.Normalization(
        mean=list(mean), variance=[s * s for s in std], name="normalization"
    )


def _inputs(input_shape, normalization):
    """The `Input` and, normalised if asked, the tensor the network starts from."""
    inputs = keras.Input(input_shape, name="images")
    layer = _normalization_layer(normalization, input_shape[-1])
    return inputs, (inputs if layer is None else layer(inputs))


def _conv(filters, size, stride, name, initializer="glorot_uniform"):
    # Torch pads a strided 3x3 convolution by 1 on every side; Keras' "same"
    # would pad only the bottom and right, so strided convolutions pad first.
    padding = "same" if stride == 1 else "valid"
    return layers.Conv2D(
        filters,
        size,
        stride,
        padding,
        use_bias=False,
        kernel_initializer=initializer,
        name=name,
    )


def _strided(x, size, stride, name):
    """Zero padding of `(size - 1) // 2` before a strided layer, as in torch."""
    if stride == 1 or size == 1:
        return x
    return layers.ZeroPadding2D((size - 1) // 2, name=f"{name}_pad")(x)


def _batch_norm(epsilon, momentum, synchronized, name, zero=False):
    return SyncBatchNormalization(
        epsilon=epsilon,
        momentum=momentum,
        gamma_initializer="zeros" if zero else "ones",
        synchronized=synchronized,
        name=name,
    )


def _basic_block(x, filters, stride, name, bn):
    shortcut = x
    x = _strided(x, 3, stride, f"{name}_conv1")
    x = _conv(filters, 3, stride, f"{name}_conv1")(x)
    x = bn(f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = _conv(filters, 3, 1, f"{name}_conv2")(x)
    x = bn(f"{name}_bn2")(x)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = _conv(filters, 1, stride, f"{name}_proj_conv")(shortcut)
        shortcut = bn(f"{name}_proj_bn")(shortcut)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_relu2")(x)


def resnet18_cifar(
    input_shape=(32, 32, 3),
    width=64,
    name="resnet18_cifar",
    batch_norm_epsilon=1e-5,
    batch_norm_momentum=0.9,
    normalization=None,
    batch_norm_synchronized=True,
):
    """ResNet-18 with the CIFAR stem, pooled to a `8 * width`-d feature.

    The stem is a single 3x3 convolution with stride 1 and no max-pooling (the
    usual adaptation of ResNet to 32x32 images, used by the published CIFAR-10
    setting of IMSVD). Four stages of two basic blocks follow, with
    `width, 2 width, 4 width, 8 width` filters, then global average pooling.
    Strided 3x3 convolutions pad one pixel on every side, as in PyTorch.

    Args:
        input_shape: Image shape `(height, width, channels)`. Defaults to
            `(32, 32, 3)`.
        width: Filters of the first stage. Defaults to `64` (a 512-d feature).
        name: Model name. Defaults to `"resnet18_cifar"`.
        batch_norm_epsilon: Epsilon of every BatchNorm. Defaults to `1e-5`
            (PyTorch's).
        batch_norm_momentum: Keras momentum of the moving statistics (torch's
            `momentum` is `1 -` this). Defaults to `0.9`.
        normalization: `None` (images enter as they are), `"cifar10"` or
            `"imagenet"` (the mean and std of the published recipes, in
            `NORMALIZATIONS`), or a pair `(mean, std)` of per-channel values.
            The normalisation is the model's first layer, saved with it, so
            the model takes images in `[0, 1]`. Defaults to `None`.
        batch_norm_synchronized: Whether every BatchNorm uses the statistics
            of the global batch in data-parallel training
            (`keras_imsvd.layers.SyncBatchNormalization`); `False` gives each
            replica its own. Defaults to `True`, as the published code.

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
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(
            f"`width` must be a positive integer. Received: width={width!r}"
        )
    _check_batch_norm(batch_norm_epsilon, batch_norm_momentum, batch_norm_synchronized)

    def bn(layer_name):
        return _batch_norm(
            batch_norm_epsilon, batch_norm_momentum, batch_norm_synchronized, layer_name
        )

    inputs, x = _inputs(input_shape, normalization)
    x = _conv(width, 3, 1, "stem_conv")(x)
    x = bn("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, multiplier in enumerate((1, 2, 4, 8)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(
                x, width * multiplier, stride, f"stage{stage}_block{block}", bn
            )
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name)


# torchvision's kaiming_normal_(mode="fan_out", nonlinearity="relu").
_KAIMING_FAN_OUT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}


def _bottleneck(x, filters, stride, name, bn, zero_init_residual):
    """ResNet v1.5 bottleneck: the stride sits in the 3x3 convolution."""

    def conv(filters, size, stride, layer_name):
        initializer = keras.initializers.get(_KAIMING_FAN_OUT)
        return _conv(filters, size, stride, layer_name, initializer)

    shortcut = x
    x = conv(filters, 1, 1, f"{name}_conv1")(x)
    x = bn(f"{name}_bn1")(x)
    x = layers.ReLU(name=f"{name}_relu1")(x)
    x = _strided(x, 3, stride, f"{name}_conv2")
    x = conv(filters, 3, stride, f"{name}_conv2")(x)
    x = bn(f"{name}_bn2")(x)
    x = layers.ReLU(name=f"{name}_relu2")(x)
    x = conv(4 * filters, 1, 1, f"{name}_conv3")(x)
    x = bn(f"{name}_bn3", zero=zero_init_residual)(x)
    if stride != 1 or shortcut.shape[-1] != 4 * filters:
        shortcut = conv(4 * filters, 1, stride, f"{name}_proj_conv")(shortcut)
        shortcut = bn(f"{name}_proj_bn")(shortcut)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_relu3")(x)


def resnet50(
    input_shape=(224, 224, 3),
    name="resnet50",
    zero_init_residual=True,
    batch_norm_epsilon=1e-5,
    batch_norm_momentum=0.9,
    normalization=None,
    batch_norm_synchronized=True,
):
    """ResNet-50 v1.5 as torchvision builds it, randomly initialised, pooled to 2048-d.

    A 7x7 stride-2 stem with 3x3 stride-2 max-pooling, then stages of
    `(3, 4, 6, 3)` bottleneck blocks with `64, 128, 256, 512` inner filters
    (four times as many out). As in torchvision (ResNet "v1.5"), a block that
    halves the resolution does so in its 3x3 convolution, convolutions have no
    bias, and their kernels start kaiming-normal in fan-out mode,
    `N(0, 2 / (k * k * filters))`. With `zero_init_residual` the last
    BatchNorm of each block starts with `gamma = 0`, so every block starts as
    the identity, as the published ImageNet recipe of IMSVD sets it.
    23,508,032 trainable parameters, the count of torchvision's `resnet50`
    without its classifier.

    Args:
        input_shape: Image shape. Defaults to `(224, 224, 3)`.
        name: Model name. Defaults to `"resnet50"`.
        zero_init_residual: Whether the last BatchNorm `gamma` of each residual
            block starts at 0. Defaults to `True`.
        batch_norm_epsilon: Epsilon of every BatchNorm. Defaults to `1e-5`.
        batch_norm_momentum: Keras momentum of the moving statistics.
            Defaults to `0.9`.
        normalization: As for `resnet18_cifar`; the published ImageNet recipe
            is `"imagenet"`. Defaults to `None`.
        batch_norm_synchronized: As for `resnet18_cifar`. Defaults to `True`.

    Returns:
        A functional `keras.Model` from images to `(N, 2048)` features.

    Example:

    >>> import keras_imsvd
    >>> keras_imsvd.backbones.resnet50(input_shape=(64, 64, 3)).output_shape
    (None, 2048)

    References:
        He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition".
        https://arxiv.org/abs/1512.03385
        Goyal et al. "Accurate, Large Minibatch SGD: Training ImageNet in 1
        Hour" (zero-initialised residual BatchNorm).
        https://arxiv.org/abs/1706.02677
    """
    input_shape = _check_shape(input_shape)
    if not isinstance(zero_init_residual, bool):
        raise TypeError(
            "`zero_init_residual` must be True or False. "
            f"Received: zero_init_residual={zero_init_residual!r}"
        )
    _check_batch_norm(batch_norm_epsilon, batch_norm_momentum, batch_norm_synchronized)

    def bn(layer_name, zero=False):
        return _batch_norm(
            batch_norm_epsilon,
            batch_norm_momentum,
            batch_norm_synchronized,
            layer_name,
            zero,
        )

    inputs, x = _inputs(input_shape, normalization)
    x = _strided(x, 7, 2, "stem_conv")
    x = _conv(64, 7, 2, "stem_conv", keras.initializers.get(_KAIMING_FAN_OUT))(x)
    x = bn("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    # Zero padding equals torch's -inf padding here: the inputs are >= 0.
    x = _strided(x, 3, 2, "stem_pool")
    x = layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    for stage, (filters, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            block_name = f"stage{stage}_block{block}"
            x = _bottleneck(x, filters, stride, block_name, bn, zero_init_residual)
    outputs = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name)


def small_convnet(
    input_shape=(16, 16, 1),
    widths=(32, 64, 128),
    name="small_convnet",
    batch_norm_epsilon=1e-5,
    batch_norm_momentum=0.9,
    normalization=None,
    batch_norm_synchronized=True,
):
    """A small, fast convnet for CPU work and tests.

    Each width gives a block `Conv2D(3x3) -> BatchNorm -> ReLU -> MaxPool(2)`
    (the pooling is skipped once the feature map is 2x2 or smaller); global
    average pooling gives a `widths[-1]`-d feature.

    Args:
        input_shape: Image shape. Defaults to `(16, 16, 1)` (the bundled digits
            upsampled to 16x16).
        widths: Filters per block. Defaults to `(32, 64, 128)`.
        name: Model name. Defaults to `"small_convnet"`.
        batch_norm_epsilon: Epsilon of every BatchNorm. Defaults to `1e-5`.
        batch_norm_momentum: Keras momentum of the moving statistics.
            Defaults to `0.9`.
        normalization: As for `resnet18_cifar`. Defaults to `None`.
        batch_norm_synchronized: As for `resnet18_cifar`. Defaults to `True`.

    Returns:
        A functional `keras.Model` from images to `(N, widths[-1])` features.

    Example:

    >>> import keras_imsvd
    >>> keras_imsvd.backbones.small_convnet().output_shape
    (None, 128)
    """
    input_shape = _check_shape(input_shape)
    widths = tuple(widths)
    if not widths or not all(
        isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths
    ):
        raise ValueError(
            f"`widths` must be positive integers. Received: widths={widths!r}"
        )
    _check_batch_norm(batch_norm_epsilon, batch_norm_momentum, batch_norm_synchronized)
    inputs, x = _inputs(input_shape, normalization)
    size = min(input_shape[0], input_shape[1])
    for i, width in enumerate(widths):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = _batch_norm(
            batch_norm_epsilon, batch_norm_momentum, batch_norm_synchronized, f"bn{i}"
        )(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        if size > 2:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
            size //= 2
    outputs = layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.Model(inputs, outputs, name=name)
