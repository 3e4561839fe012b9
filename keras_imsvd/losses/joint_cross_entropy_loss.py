"""`JointCrossEntropy`: the IMSVD loss as a `keras.losses.Loss`."""

import keras

from keras_imsvd._validation import check_weight
from keras_imsvd.losses.joint_cross_entropy import joint_cross_entropy


@keras.saving.register_keras_serializable(package="keras_imsvd")
class JointCrossEntropy(keras.losses.Loss):
    """The IMSVD joint cross-entropy loss as a Keras `Loss`.

    A thin wrapper around `keras_imsvd.losses.joint_cross_entropy`, for code that
    expects a `keras.losses.Loss`. The two arguments of a call are the soft codes
    of the two views (`y_true` plays view 1, `y_pred` view 2), each of shape
    `(N, K, b)`; the result is the weighted scalar loss
    `invariance_weight L_inv + diagonal_weight L_dia + off_diagonal_weight L_off`.
    The loss is already a batch statistic, so the reduction leaves it as is.

    Args:
        invariance_weight: Weight of the invariance term. Defaults to `1.0`.
        diagonal_weight: Weight of the diagonal term. Defaults to `1.0`.
        off_diagonal_weight: Weight of the off-block term. Defaults to `1.0`.
        name: Name of the loss. Defaults to `"joint_cross_entropy"`.

    Call arguments:
        y_true: Soft codes of view 1, `(N, K, b)`.
        y_pred: Soft codes of view 2, `(N, K, b)`.

    Returns:
        A float32 scalar.

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> layer = keras_imsvd.layers.SoftVariableDiscretization(bin_size=8)
    >>> rng = np.random.default_rng(0)
    >>> p1 = layer(rng.normal(size=(16, 32)).astype("float32"))
    >>> p2 = layer(rng.normal(size=(16, 32)).astype("float32"))
    >>> loss = keras_imsvd.losses.JointCrossEntropy()(p1, p2)

    References:
        https://arxiv.org/abs/2501.03469
    """

    def __init__(
        self,
        invariance_weight=1.0,
        diagonal_weight=1.0,
        off_diagonal_weight=1.0,
        name="joint_cross_entropy",
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        check_weight("invariance_weight", invariance_weight)
        check_weight("diagonal_weight", diagonal_weight)
        check_weight("off_diagonal_weight", off_diagonal_weight)
        self.invariance_weight = invariance_weight
        self.diagonal_weight = diagonal_weight
        self.off_diagonal_weight = off_diagonal_weight

    def call(self, y_true, y_pred):
        total, _ = joint_cross_entropy(
            y_true,
            y_pred,
            invariance_weight=self.invariance_weight,
            diagonal_weight=self.diagonal_weight,
            off_diagonal_weight=self.off_diagonal_weight,
        )
        return total

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "invariance_weight": self.invariance_weight,
                "diagonal_weight": self.diagonal_weight,
                "off_diagonal_weight": self.off_diagonal_weight,
            }
        )
        return config
