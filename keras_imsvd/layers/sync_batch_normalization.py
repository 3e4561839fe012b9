"""`SyncBatchNormalization`: BatchNorm with the statistics of the global batch."""

import keras
from keras import ops

from keras_imsvd.distribute import collectives


def _global_moments(inputs, axes, channel_axis, mask=None):
    """Mean and biased variance over `axes` of the global batch.

    Each replica sums its own samples: per channel, the count, the sum and the
    sum of squares, stacked so that one all-reduce gives those of the global
    batch. Then `mean = sum / count` and
    `variance = max(sum_of_squares / count - mean ** 2, 0)`, the formula of
    Keras' own synchronized moments on TensorFlow. Gradients flow through the
    all-reduce, so each replica's inputs receive the gradient of the global
    statistics.

    With a single replica and no mask these are `keras.ops.moments`, the
    statistics of `keras.layers.BatchNormalization` (on JAX under a
    `keras.distribution`, of the global batch held as one sharded array).

    Args:
        inputs: The local batch, in float32 or wider.
        axes: The axes reduced over (all but the channel axis).
        channel_axis: The channel axis, non-negative.
        mask: A mask of `inputs.shape[:-1]` whose false entries are left out of
            the statistics, or `None`. Defaults to `None`.

    Returns:
        `(mean, variance)`, each of shape `(channels,)`.
    """
    if mask is None and collectives.num_replicas() == 1:
        return ops.moments(inputs, axes)
    if mask is None:
        sums = ops.sum(inputs, axes)  # (C,)
        squares = ops.sum(ops.square(inputs), axes)
        per_channel = ops.size(inputs) // inputs.shape[channel_axis]
        counts = ops.ones_like(sums) * ops.cast(per_channel, inputs.dtype)
    else:
        # As keras.layers.BatchNormalization: the mask covers the last axis.
        weights = ops.broadcast_to(ops.expand_dims(mask, -1), ops.shape(inputs))
        weights = ops.cast(weights, inputs.dtype)
        sums = ops.sum(weights * inputs, axes)
        squares = ops.sum(weights * ops.square(inputs), axes)
        counts = ops.sum(weights, axes)
    totals = collectives.all_reduce_sum(ops.stack([counts, sums, squares]))  # (3, C)
    count = ops.maximum(totals[0], 1.0)  # a fully masked channel keeps 0 / 1
    mean = totals[1] / count
    variance = ops.maximum(totals[2] / count - ops.square(mean), 0.0)
    return mean, variance


@keras.saving.register_keras_serializable(package="keras_imsvd")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization with the statistics of the global batch, on any backend.

    In data-parallel training (`keras_imsvd.distribute.data_parallel()`), a
    replica sees only its share of each global batch. As
    `torch.nn.SyncBatchNorm` in the published code, this layer normalises
    every replica's samples, in training, with the mean and variance of the
    *global* batch, and moves its moving statistics with them:

    `mean = sum_r S1_r / sum_r n_r`,
    `variance = sum_r S2_r / sum_r n_r - mean ** 2`,

    where replica `r` holds `n_r` samples (per channel) whose values sum to
    `S1_r` and whose squares sum to `S2_r`. The three sums are all-reduced
    together, once per layer and step (`keras_imsvd.distribute.all_reduce_sum`),
    and gradients flow through the all-reduce:

    - TensorFlow, under a `tf.distribute` strategy: the all-reduce of the
      strategy's replica context (the statistics of Keras'
      `BatchNormalization(synchronized=True)`, which only TensorFlow offers).
    - PyTorch, under `torch.distributed` with several processes: an autograd
      all-reduce over the processes.
    - JAX: each layer already sees the global batch as one sharded array
      under a `keras.distribution`; nothing is added.

    On one replica, in inference, or with `synchronized=False`, the layer is
    `keras.layers.BatchNormalization` (with a mask, on one replica, up to
    rounding: Keras adds a tiny epsilon to the masked count).

    The moving variance follows Keras' convention, the biased variance of
    the batch; `torch.nn.SyncBatchNorm` moves it with the unbiased one (a
    factor `N / (N - 1)`, for a global batch of `N` values per channel),
    which only affects inference.

    Args:
        synchronized: Whether training uses the statistics of the global
            batch. `False` gives each replica its own statistics. Defaults to
            `True`.
        **kwargs: The arguments of `keras.layers.BatchNormalization`, except
            `renorm=True` with `synchronized=True`.

    Call arguments:
        inputs: The batch, of any rank.
        training: Whether to normalise with the batch statistics (and update
            the moving ones) rather than with the moving statistics.
        mask: As for `keras.layers.BatchNormalization`: entries left out of
            the statistics.

    Returns:
        The normalised batch, of the shape of `inputs`.

    Example:

    >>> import keras, numpy as np, keras_imsvd
    >>> layer = keras_imsvd.layers.SyncBatchNormalization(epsilon=1e-5)
    >>> x = np.array([[1.0], [3.0]], "float32")
    >>> keras.ops.convert_to_numpy(layer(x, training=True)).round(3).ravel().tolist()
    [-1.0, 1.0]

    References:
        Ioffe, Szegedy. "Batch Normalization". https://arxiv.org/abs/1502.03167
        Niu, Xia, Shan, Wang. "Information-Maximized Soft Variable
        Discretization for Self-Supervised Image Representation Learning".
        https://arxiv.org/abs/2501.03469
    """

    def __init__(self, synchronized=True, **kwargs):
        if not isinstance(synchronized, bool):
            raise TypeError(
                "`synchronized` must be True or False. "
                f"Received: synchronized={synchronized!r}"
            )
        if synchronized and kwargs.get("renorm"):
            raise ValueError(
                "SyncBatchNormalization does not synchronise batch "
                "renormalization: pass synchronized=False to use it. "
                f"Received: renorm={kwargs['renorm']!r}, synchronized=True"
            )
        # Keras' own flag is TensorFlow-only; the statistics are computed here.
        super().__init__(synchronized=False, **kwargs)
        self.synchronized = synchronized

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self.synchronized):
            return super().call(inputs, training=training, mask=mask)
        rank = len(inputs.shape)
        channel_axis = self.axis % rank
        axes = [axis for axis in range(rank) if axis != channel_axis]
        dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = ops.cast(inputs, dtype)
        mean, variance = _global_moments(inputs, axes, channel_axis, mask)
        for variable, value in (
            (self.moving_mean, mean),
            (self.moving_variance, variance),
        ):
            moving = ops.cast(variable, dtype)
            variable.assign(moving * self.momentum + value * (1.0 - self.momentum))
        outputs = ops.batch_normalization(
            inputs,
            mean,
            variance,
            axis=self.axis,
            offset=None if self.beta is None else ops.cast(self.beta, dtype),
            scale=None if self.gamma is None else ops.cast(self.gamma, dtype),
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)
