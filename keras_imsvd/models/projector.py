"""The IMSVD projector: an MLP of Dense + BatchNorm + ReLU blocks."""

import math

import keras

from keras_imsvd.backbones import _check_batch_norm
from keras_imsvd.layers.sync_batch_normalization import SyncBatchNormalization

_INITIALIZATIONS = ("torch", "keras")


@keras.saving.register_keras_serializable(package="keras_imsvd")
class LinearDense(keras.layers.Dense):
    """A `keras.layers.Dense` that starts as `torch.nn.Linear` does.

    With `F` inputs, the kernel starts `uniform(-1/sqrt(F), 1/sqrt(F))` (torch's
    `kaiming_uniform_(a=sqrt(5))`, which is `VarianceScaling(1/3, "fan_in",
    "uniform")`) and so does the bias, whose bound is only known once the
    layer sees its input. A `kernel_initializer` or `bias_initializer` passed
    in replaces the torch one.

    Args:
        units: Output size.
        **kwargs: `keras.layers.Dense` arguments.
    """

    def __init__(self, units, **kwargs):
        fan_in_bias = "bias_initializer" not in kwargs
        kwargs.setdefault(
            "kernel_initializer",
            keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
        )
        super().__init__(units, **kwargs)
        self._fan_in_bias = fan_in_bias

    def build(self, input_shape):
        if self._fan_in_bias:
            bound = 1.0 / math.sqrt(input_shape[-1])
            self.bias_initializer = keras.initializers.RandomUniform(-bound, bound)
        super().build(input_shape)

    def get_config(self):
        config = super().get_config()
        if self._fan_in_bias:
            # Rebuilt from the input size when the layer is built again.
            config.pop("bias_initializer")
        return config


def parse_projector_spec(projector):
    """Reads a projector spec into a list of layer widths.

    Args:
        projector: A string of widths joined by `-` (the published `--mlp`
            format, e.g. `"8192-8160"`) or a list/tuple of positive integers.

    Returns:
        A list of positive integers.

    Raises:
        ValueError: if the spec cannot be parsed or holds a width below 1.
        TypeError: if `projector` is neither a string nor a sequence.
    """
    if isinstance(projector, str):
        parts = projector.strip().split("-")
        try:
            widths = [int(part) for part in parts]
        except ValueError:
            raise ValueError(
                "`projector` must be widths joined by '-', such as '1024-1024-1024'. "
                f"Received: projector={projector!r}"
            ) from None
    elif isinstance(projector, (list, tuple)):
        if not all(isinstance(w, int) and not isinstance(w, bool) for w in projector):
            raise TypeError(
                "`projector` as a list must hold integers. "
                f"Received: projector={projector!r}"
            )
        widths = list(projector)
    else:
        raise TypeError(
            "`projector` must be a spec string such as '1024-1024-1024', a list of "
            f"widths, or a keras.Model. Received: projector={projector!r}"
        )
    if not widths or any(w < 1 for w in widths):
        raise ValueError(
            "`projector` must list at least one width, each >= 1. "
            f"Received: projector={projector!r}"
        )
    return widths


def build_projector(
    projector,
    name="projector",
    initialization="torch",
    batch_norm_epsilon=1e-5,
    batch_norm_momentum=0.9,
    batch_norm_synchronized=True,
):
    """Builds the projector MLP of IMSVD from a spec.

    Every width but the last gives a `Dense -> BatchNorm -> ReLU` block;
    the last width gives a `Dense` without bias, as in the published code (and in
    Barlow Twins, on which it builds). By default the layers start as
    PyTorch's: `LinearDense` layers (kernel and bias uniform in
    `+-1/sqrt(fan_in)`) and BatchNorm with epsilon 1e-5 and momentum 0.9
    (torch's 0.1). The BatchNorm layers are
    `keras_imsvd.layers.SyncBatchNormalization`: in data-parallel training
    they use the statistics of the global batch, as the published code's
    `torch.nn.SyncBatchNorm`.

    Args:
        projector: Widths as a string (`"8192-8160"`) or a list of integers.
        name: Name of the returned model. Defaults to `"projector"`.
        initialization: `"torch"` (`LinearDense`, as `torch.nn.Linear`) or
            `"keras"` (`keras.layers.Dense`: glorot-uniform kernel, zero bias,
            the behaviour of keras_imsvd 0.1.0). Defaults to `"torch"`.
        batch_norm_epsilon: Epsilon of the BatchNorm layers. Defaults to
            `1e-5`.
        batch_norm_momentum: Keras momentum of their moving statistics.
            Defaults to `0.9`.
        batch_norm_synchronized: Whether the BatchNorm layers use the
            statistics of the global batch in data-parallel training; `False`
            gives each replica its own. Defaults to `True`.

    Returns:
        A `keras.Sequential` mapping `(N, F)` features to `(N, widths[-1])`.

    Example:

    >>> import keras_imsvd
    >>> mlp = keras_imsvd.models.build_projector("64-32")
    >>> [layer.__class__.__name__ for layer in mlp.layers]
    ['LinearDense', 'SyncBatchNormalization', 'ReLU', 'LinearDense']
    """
    widths = parse_projector_spec(projector)
    if initialization not in _INITIALIZATIONS:
        raise ValueError(
            f"`initialization` must be one of {_INITIALIZATIONS}. "
            f"Received: initialization={initialization!r}"
        )
    _check_batch_norm(batch_norm_epsilon, batch_norm_momentum, batch_norm_synchronized)
    dense = LinearDense if initialization == "torch" else keras.layers.Dense
    blocks = []
    for i, width in enumerate(widths[:-1]):
        blocks += [
            dense(width, name=f"dense_{i}"),
            SyncBatchNormalization(
                epsilon=batch_norm_epsilon,
                momentum=batch_norm_momentum,
                synchronized=batch_norm_synchronized,
                name=f"batch_norm_{i}",
            ),
            keras.layers.ReLU(name=f"relu_{i}"),
        ]
    blocks.append(dense(widths[-1], use_bias=False, name=f"dense_{len(widths) - 1}"))
    return keras.Sequential(blocks, name=name)
