"""SGD with the update rule of `torch.optim.SGD`: coupled L2 weight decay."""

import keras
from keras import ops

from keras_imsvd._keras_compat import WithoutDecoupledWeightDecay
from keras_imsvd._keras_compat import uses_weight_decay
from keras_imsvd._keras_compat import variable_index


@keras.saving.register_keras_serializable(package="keras_imsvd")
class TorchSGD(WithoutDecoupledWeightDecay, keras.optimizers.Optimizer):
    """Stochastic gradient descent as `torch.optim.SGD` computes it.

    The published CIFAR-10 recipe of IMSVD trains with
    `torch.optim.SGD(momentum=0.9, weight_decay=5e-4)`. Its rule differs from
    `keras.optimizers.SGD` in two ways:

    ```python
    g = g + weight_decay * p          # L2 decay, added to the gradient
    mu = momentum * mu + g            # the buffer holds gradients, not steps
    p = p - learning_rate * mu
    ```

    - The weight decay is *coupled*: it enters the gradient before the
      momentum, on every variable (biases and normalisation parameters
      included). `keras.optimizers.SGD(weight_decay=...)` instead decays the
      weights directly (`p -= learning_rate * weight_decay * p`), which after
      a few hundred steps amounts to a decay about 10x weaker under momentum
      0.9.
    - The momentum buffer accumulates gradients and is scaled by the current
      learning rate, where Keras accumulates learning-rate-scaled steps; the
      two differ while the learning rate changes (warm-up, cosine decay).

    With a constant learning rate and no weight decay the two rules give the
    same weights.

    Args:
        learning_rate: A float or a
            `keras.optimizers.schedules.LearningRateSchedule`. Defaults to
            `0.01`.
        momentum: Momentum coefficient in `[0, 1]`. Defaults to `0.9`.
        weight_decay: Coefficient of the coupled L2 weight decay, `>= 0`.
            `None` means `0`. Variables named by `exclude_from_weight_decay()`
            are not decayed. Defaults to `None`.
        nesterov: Whether to use Nesterov momentum (`g + momentum * mu` is the
            step, as in torch). Defaults to `False`.
        name: Name of the optimizer. Defaults to `"torch_sgd"`.
        **kwargs: Passed to `keras.optimizers.Optimizer` (`clipnorm`,
            `global_clipnorm`, `use_ema`, `loss_scale_factor`, ...).

    Example:

    ```python
    schedule = keras_imsvd.optimizers.published_schedule(
        base_learning_rate=0.1, batch_size=512, steps_per_epoch=97, epochs=800
    )
    optimizer = keras_imsvd.optimizers.TorchSGD(
        schedule, momentum=0.9, weight_decay=5e-4
    )
    ```

    References:
        - PyTorch, `torch.optim.SGD`.
          https://pytorch.org/docs/stable/generated/torch.optim.SGD.html
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        weight_decay=None,
        nesterov=False,
        name="torch_sgd",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            name=name,
            **kwargs,
        )
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float))
            or not 0.0 <= momentum <= 1.0
        ):
            raise ValueError(
                f"momentum must be a float in [0, 1]. Received: momentum={momentum!r}"
            )
        if weight_decay is not None and (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, (int, float))
            or not weight_decay >= 0
        ):
            raise ValueError(
                "weight_decay must be a float >= 0 or None. "
                f"Received: weight_decay={weight_decay!r}"
            )
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov must be a bool. Received: nesterov={nesterov!r}")
        self.momentum = float(momentum)
        self.nesterov = nesterov

    def build(self, var_list):
        """Creates one momentum buffer per variable.

        Args:
            var_list: The model's trainable variables.
        """
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")
        # Decided on the Keras variables: TensorFlow hands `update_step` the
        # underlying tf.Variable.
        self._decayed = tuple(
            bool(self.weight_decay) and uses_weight_decay(self, v) for v in var_list
        )

    def update_step(self, gradient, variable, learning_rate):
        """Applies one update to `variable`."""
        dtype = variable.dtype
        index = variable_index(self, variable)
        gradient = ops.cast(gradient, dtype)
        if self._decayed[index]:
            decay = ops.cast(self.weight_decay, dtype)
            gradient = ops.add(gradient, ops.multiply(decay, variable))
        momentum = self._momentums[index]
        new_momentum = ops.add(
            ops.multiply(ops.cast(self.momentum, dtype), momentum), gradient
        )
        self.assign(momentum, new_momentum)
        step = new_momentum
        if self.nesterov:
            step = ops.add(gradient, ops.multiply(ops.cast(self.momentum, dtype), step))
        self.assign_sub(variable, ops.multiply(ops.cast(learning_rate, dtype), step))

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
