"""`SoftVariableDiscretization`: a vector to K soft categorical variables."""

import math

import keras
from keras import ops


def _check_bin_size(bin_size):
    if isinstance(bin_size, bool) or not isinstance(bin_size, int):
        raise TypeError(
            f"`bin_size` must be an integer. Received: bin_size={bin_size!r}"
        )
    if bin_size < 2:
        raise ValueError(
            f"`bin_size` must be at least 2. Received: bin_size={bin_size}"
        )


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number. Received: {name}={value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"`{name}` must be a finite number > 0. Received: {name}={value}"
        )


@keras.saving.register_keras_serializable(package="keras_imsvd")
class SoftVariableDiscretization(keras.layers.Layer):
    """Soft discretization of a vector into K categorical variables.

    The input `z` of size `D = K * b` is read as K variables of `b` logits each;
    every variable becomes a soft one-hot distribution over its `b` bins:

    `p_k = max(softmax(z_k / temperature), epsilon)`

    As in the published implementation, the clamp comes after the softmax and the
    result is not renormalised, so each row sums to 1 up to `b * epsilon`.

    The layer computes in float32 by default (its `dtype` policy), so that under
    a mixed-precision policy the clamp at `epsilon = 1e-8` does not underflow to
    zero in float16 and the loss receives float32 codes.

    Args:
        bin_size: Number of bins `b` per variable, at least 2. It must divide the
            size of the input.
        temperature: Softmax temperature `t > 0`. Lower values give sharper
            codes. Defaults to `1.0`.
        epsilon: Lower clamp of every probability. Defaults to `1e-8`.
        **kwargs: Base layer arguments (`name`, `dtype`, ...). `dtype` defaults
            to `"float32"`.

    Call arguments:
        inputs: A tensor of shape `(N, D)`.

    Returns:
        A tensor of shape `(N, D / bin_size, bin_size)`.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> layer = keras_imsvd.layers.SoftVariableDiscretization(bin_size=4)
    >>> layer(np.zeros((2, 12), dtype="float32")).shape
    (2, 3, 4)

    References:
        https://arxiv.org/abs/2501.03469
    """

    def __init__(self, bin_size, temperature=1.0, epsilon=1e-8, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        _check_bin_size(bin_size)
        _check_positive("temperature", temperature)
        _check_positive("epsilon", epsilon)
        self.bin_size = bin_size
        self.temperature = temperature
        self.epsilon = epsilon
        self.input_spec = keras.layers.InputSpec(min_ndim=2, max_ndim=2)

    def _num_variables(self, embedding_size):
        if embedding_size is None:
            raise ValueError(
                "The embedding size must be known. Received: input shape with "
                "embedding_size=None"
            )
        if embedding_size % self.bin_size:
            raise ValueError(
                "bin_size must divide the embedding size. Received: "
                f"embedding_size={embedding_size}, bin_size={self.bin_size}"
            )
        return embedding_size // self.bin_size

    def build(self, input_shape):
        self._num_variables(input_shape[-1])
        self.built = True

    def call(self, inputs):
        num_variables = self._num_variables(inputs.shape[-1])
        logits = ops.reshape(inputs, (-1, num_variables, self.bin_size))
        probabilities = ops.softmax(logits / self.temperature, axis=-1)
        return ops.maximum(probabilities, self.epsilon)

    def compute_output_shape(self, input_shape):
        num_variables = self._num_variables(input_shape[-1])
        return (input_shape[0], num_variables, self.bin_size)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "bin_size": self.bin_size,
                "temperature": self.temperature,
                "epsilon": self.epsilon,
            }
        )
        return config
