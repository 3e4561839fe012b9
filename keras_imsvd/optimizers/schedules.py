"""The published learning-rate schedule: linear warm-up, then cosine decay."""

import numbers

import keras

from keras_imsvd._validation import check_positive_int


def published_schedule(
    base_learning_rate: float,
    batch_size: int,
    steps_per_epoch: int,
    epochs: int,
    warmup_epochs: float = 10,
    final_scale: float = 0.001,
) -> keras.optimizers.schedules.CosineDecay:
    """Learning-rate schedule of the published IMSVD (and Barlow Twins) code.

    The peak learning rate follows the linear scaling rule,
    `peak = base_learning_rate * batch_size / 256`. With `W` warm-up steps and
    `T` steps in all, the learning rate at optimizer step `s` (counted from 0)
    is

    ```
    s <  W:  peak * s / W
    s >= W:  peak * (final_scale + (1 - final_scale) * q),
             q = 0.5 * (1 + cos(pi * min(s - W, T - W) / (T - W)))
    ```

    so it rises linearly from 0, reaches `peak` after `warmup_epochs`, and
    falls along a cosine to `final_scale * peak` at the last step. This is
    exactly `keras.optimizers.schedules.CosineDecay` with warm-up, which is
    what is returned: it serialises with any optimizer and needs no custom
    object to load.

    Args:
        base_learning_rate: Learning rate for a batch of 256, e.g. `0.6` for
            LARS on ImageNet and `0.1` for SGD on CIFAR-10 in the paper.
        batch_size: Global batch size (all replicas together).
        steps_per_epoch: Optimizer steps per epoch.
        epochs: Number of training epochs.
        warmup_epochs: Epochs of linear warm-up; may be fractional, must be
            smaller than `epochs`. `0` starts the cosine at `peak`. Defaults
            to `10`.
        final_scale: Final learning rate as a fraction of `peak`, in `[0, 1]`.
            Defaults to `0.001`.

    Returns:
        A `keras.optimizers.schedules.CosineDecay` to pass as `learning_rate`
        to an optimizer.

    Example:

    ```python
    schedule = keras_imsvd.optimizers.published_schedule(
        0.1, batch_size=512, steps_per_epoch=97, epochs=800
    )
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    ```

    References:
        - Niu, Xia, Shan, Wang, "Information-Maximized Soft Variable
          Discretization for Self-Supervised Image Representation Learning",
          2025. https://arxiv.org/abs/2501.03469
        - Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in
          1 Hour", 2017 (linear scaling and warm-up).
          https://arxiv.org/abs/1706.02677
    """
    if (
        isinstance(base_learning_rate, bool)
        or not isinstance(base_learning_rate, numbers.Real)
        or base_learning_rate <= 0
    ):
        raise ValueError(
            "base_learning_rate must be a number > 0. "
            f"Received: base_learning_rate={base_learning_rate!r}"
        )
    check_positive_int("batch_size", batch_size)
    check_positive_int("steps_per_epoch", steps_per_epoch)
    check_positive_int("epochs", epochs)
    if (
        isinstance(warmup_epochs, bool)
        or not isinstance(warmup_epochs, numbers.Real)
        or not 0 <= warmup_epochs < epochs
    ):
        raise ValueError(
            "warmup_epochs must be a number in [0, epochs). "
            f"Received: warmup_epochs={warmup_epochs!r}, epochs={epochs}"
        )
    if (
        isinstance(final_scale, bool)
        or not isinstance(final_scale, numbers.Real)
        or not 0 <= final_scale <= 1
    ):
        raise ValueError(
            f"final_scale must be in [0, 1]. Received: final_scale={final_scale!r}"
        )
    peak = float(base_learning_rate) * batch_size / 256
    total_steps = epochs * steps_per_epoch
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=peak,
            decay_steps=total_steps,
            alpha=float(final_scale),
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=total_steps - warmup_steps,
        alpha=float(final_scale),
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )
