"""LARS: layer-wise adaptive rate scaling with coupled weight decay."""

import keras
from keras import ops

from keras_imsvd._keras_compat import WithoutDecoupledWeightDecay
from keras_imsvd._keras_compat import uses_weight_decay
from keras_imsvd._keras_compat import variable_index


@keras.saving.register_keras_serializable(package="keras_imsvd")
class LARS(WithoutDecoupledWeightDecay, keras.optimizers.Optimizer):
    """Layer-wise adaptive rate scaling (LARS), as used by IMSVD on ImageNet.

    Each variable `p` with gradient `g` gets its own trust ratio, so that the
    step it takes is a fixed fraction `eta` of its own norm whatever the scale
    of its gradient. This is the rule of the Barlow Twins / VICReg / IMSVD
    PyTorch code:

    ```python
    if p is adapted:
        g = g + weight_decay * p                      # coupled L2 decay
        trust = eta * ||p|| / ||g||  if ||p|| > 0 and ||g|| > 0  else 1
        g = trust * g
    mu = momentum * mu + g
    p = p - learning_rate * mu
    ```

    Variables excluded from adaptation get neither the weight decay nor the
    trust ratio: plain momentum SGD. By default these are the variables of
    rank 0 or 1, that is biases and normalisation scales and offsets, as in the
    published code (`p.ndim == 1`).

    The weight decay is *coupled*: it is added to the gradient before the
    trust ratio, unlike the decoupled decay of `keras.optimizers.AdamW` that
    `keras.optimizers.Optimizer` applies for its own `weight_decay` argument.
    The base class's decoupled decay is switched off. The variables named by
    `exclude_from_weight_decay()` (the Keras method) keep the trust ratio but
    lose the decay.

    Args:
        learning_rate: A float, or a
            `keras.optimizers.schedules.LearningRateSchedule` such as the one
            returned by `keras_imsvd.optimizers.published_schedule`. Defaults
            to `0.2`.
        momentum: Momentum coefficient in `[0, 1]`. Defaults to `0.9`.
        weight_decay: Coefficient of the coupled L2 weight decay, `>= 0`.
            `None` means `0`. Defaults to `1e-6`.
        eta: Trust coefficient of the layer-wise adaptation, `> 0`. Defaults
            to `0.001`.
        exclude_from_adaptation: Which variables get plain momentum SGD (no
            weight decay, no trust ratio). `None` excludes the variables of
            rank 0 or 1. A list of strings excludes instead the variables whose
            path (e.g. `"dense/bias"`) contains any of them: `[]` adapts every
            variable, as in You et al. (2017); `["bias", "gamma", "beta"]`
            reproduces the default for Dense, Conv and BatchNormalization
            layers by name. Defaults to `None`.
        clipnorm: See `keras.optimizers.Optimizer`. Defaults to `None`.
        clipvalue: See `keras.optimizers.Optimizer`. Defaults to `None`.
        global_clipnorm: See `keras.optimizers.Optimizer`. Defaults to `None`.
        use_ema: See `keras.optimizers.Optimizer`. Defaults to `False`.
        ema_momentum: See `keras.optimizers.Optimizer`. Defaults to `0.99`.
        ema_overwrite_frequency: See `keras.optimizers.Optimizer`. Defaults to
            `None`.
        loss_scale_factor: See `keras.optimizers.Optimizer`. Defaults to
            `None`.
        gradient_accumulation_steps: See `keras.optimizers.Optimizer`. Defaults
            to `None`.
        name: Name of the optimizer. Defaults to `"lars"`.
        **kwargs: Passed to `keras.optimizers.Optimizer`.

    Example:

    ```python
    schedule = keras_imsvd.optimizers.published_schedule(
        base_learning_rate=0.6, batch_size=2048, steps_per_epoch=625, epochs=100
    )
    optimizer = keras_imsvd.optimizers.LARS(learning_rate=schedule)
    model.compile(optimizer=optimizer)
    ```

    References:
        - You, Gitman, Ginsburg, "Large Batch Training of Convolutional
          Networks", 2017. https://arxiv.org/abs/1708.03888
        - Niu, Xia, Shan, Wang, "Information-Maximized Soft Variable
          Discretization for Self-Supervised Image Representation Learning",
          2025. https://arxiv.org/abs/2501.03469
    """

    def __init__(
        self,
        learning_rate=0.2,
        momentum=0.9,
        weight_decay=1e-6,
        eta=0.001,
        exclude_from_adaptation=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="lars",
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
            raise TypeError(f"momentum must be a float. Received: momentum={momentum}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"momentum must be in [0, 1]. Received: momentum={momentum}"
            )
        if weight_decay is not None and (
            isinstance(weight_decay, bool)
            or not isinstance(weight_decay, (int, float))
            or weight_decay < 0
        ):
            raise ValueError(
                "weight_decay must be a float >= 0 or None. "
                f"Received: weight_decay={weight_decay}"
            )
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or eta <= 0:
            raise ValueError(f"eta must be a float > 0. Received: eta={eta}")
        if exclude_from_adaptation is not None:
            if isinstance(exclude_from_adaptation, str) or not all(
                isinstance(s, str) for s in exclude_from_adaptation
            ):
                raise TypeError(
                    "exclude_from_adaptation must be None or a list of strings. "
                    f"Received: exclude_from_adaptation={exclude_from_adaptation!r}"
                )
            exclude_from_adaptation = list(exclude_from_adaptation)
        self.momentum = float(momentum)
        self.eta = float(eta)
        self.exclude_from_adaptation = exclude_from_adaptation

    def _is_adapted(self, variable):
        """Whether `variable` gets weight decay and the trust ratio."""
        if self.exclude_from_adaptation is None:
            return len(variable.shape) > 1
        path = getattr(variable, "path", None) or variable.name
        return not any(s in path for s in self.exclude_from_adaptation)

    def build(self, var_list):
        """Creates one momentum buffer per variable and fixes the exclusions.

        Args:
            var_list: The model's trainable variables.
        """
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")
        # Decided once here, on the Keras variables (the TensorFlow backend
        # hands `update_step` the underlying tf.Variable, without the path).
        self._adapted = tuple(self._is_adapted(v) for v in var_list)
        self._decayed = tuple(
            adapted and bool(self.weight_decay) and uses_weight_decay(self, v)
            for adapted, v in zip(self._adapted, var_list)
        )

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keeps the trust ratio but drops the weight decay of some variables.

        Variables excluded from adaptation (see `exclude_from_adaptation`) have
        no weight decay anyway. Must be called before the first update.

        Args:
            var_list: Variables to exclude. Defaults to `None`.
            var_names: Strings; variables whose name contains one of them are
                excluded. Defaults to `None`.
        """
        if self.built:
            raise ValueError(
                "exclude_from_weight_decay() must be called before the optimizer "
                "is built, i.e. before the first training step."
            )
        super().exclude_from_weight_decay(var_list=var_list, var_names=var_names)

    def update_step(self, gradient, variable, learning_rate):
        """Applies one LARS update to `variable`."""
        dtype = variable.dtype
        index = variable_index(self, variable)
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self._decayed[index]:
            gradient = ops.add(
                gradient, ops.multiply(ops.cast(self.weight_decay, dtype), variable)
            )
        if self._adapted[index]:
            weight_norm = ops.sqrt(ops.sum(ops.square(variable)))
            gradient_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            one = ops.ones((), dtype=dtype)
            # The norm is guarded against 0 so that the branch `where` drops
            # is finite too (no inf/nan computed, none in gradients of jit).
            safe_gradient_norm = ops.where(gradient_norm > 0, gradient_norm, one)
            trust = ops.where(
                weight_norm > 0,
                ops.where(
                    gradient_norm > 0,
                    ops.cast(self.eta, dtype) * weight_norm / safe_gradient_norm,
                    one,
                ),
                one,
            )
            gradient = ops.multiply(gradient, trust)
        momentum = self._momentums[index]
        new_momentum = ops.add(
            ops.multiply(ops.cast(self.momentum, dtype), momentum), gradient
        )
        self.assign(momentum, new_momentum)
        self.assign_sub(variable, ops.multiply(lr, new_momentum))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "eta": self.eta,
                "exclude_from_adaptation": self.exclude_from_adaptation,
            }
        )
        return config
