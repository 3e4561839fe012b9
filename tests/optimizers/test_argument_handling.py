"""LARS and the published schedule honour every argument as documented.

- `exclude_from_adaptation` matches substrings of a variable's full path
  (layer name included), not only of its short name;
- `loss_scale_factor` reaches the base optimizer;
- the schedule's number arguments refuse bools and strings with a ValueError
  that quotes them, and `final_scale` takes both ends of [0, 1].
"""

import keras
import numpy as np
import pytest

from keras_imsvd.optimizers import LARS
from keras_imsvd.optimizers import published_schedule


def _step(optimizer, layer, gradient):
    """One update of `layer.kernel` from its initial value; returns the change."""
    before = keras.ops.convert_to_numpy(layer.kernel).copy()
    optimizer.apply([keras.ops.convert_to_tensor(gradient)], [layer.kernel])
    return keras.ops.convert_to_numpy(layer.kernel) - before


def test_exclusion_matches_the_layer_name_in_the_path():
    rng = np.random.default_rng(0)
    gradient = rng.normal(size=(4, 3)).astype("float32")
    changes = {}
    for exclude in (["head"], ["kernel"], []):
        layer = keras.layers.Dense(3, use_bias=False, name="head")
        layer.build((None, 4))
        layer.kernel.assign(np.ones((4, 3), "float32"))
        assert layer.kernel.name == "kernel" and "head" in layer.kernel.path
        optimizer = LARS(learning_rate=0.5, exclude_from_adaptation=exclude)
        changes[str(exclude)] = _step(optimizer, layer, gradient)
    # Excluded by its layer's name or by its own: the same plain momentum step,
    # -lr * g on the first update, read off float32 weights near 1 (to within
    # an ulp of 1, 1.2e-7).
    for exclude in ("['head']", "['kernel']"):
        np.testing.assert_allclose(changes[exclude], -0.5 * gradient, atol=1.2e-7)
    # Adapted (nothing excluded): the trust ratio rescales the step.
    assert not np.allclose(changes["[]"], -0.5 * gradient, rtol=1e-2)


def test_loss_scale_factor_is_applied():
    optimizer = LARS(loss_scale_factor=8.0)
    assert optimizer.loss_scale_factor == 8.0
    assert optimizer.get_config()["loss_scale_factor"] == 8.0
    scaled = optimizer.scale_loss(keras.ops.convert_to_tensor(1.5))
    assert float(keras.ops.convert_to_numpy(scaled)) == 12.0


_BASE = dict(base_learning_rate=0.1, batch_size=256, steps_per_epoch=10, epochs=20)


@pytest.mark.parametrize(
    "name, value",
    [
        ("base_learning_rate", True),
        ("base_learning_rate", "0.1"),
        ("warmup_epochs", True),
        ("warmup_epochs", "2"),
        ("final_scale", True),
        ("final_scale", "0.1"),
    ],
)
def test_schedule_refuses_bools_and_strings(name, value):
    with pytest.raises(ValueError, match=f"Received: {name}={value!r}"):
        published_schedule(**{**_BASE, name: value})


@pytest.mark.parametrize("final_scale", [0, 1])
def test_schedule_accepts_both_ends_of_final_scale(final_scale):
    schedule = published_schedule(**_BASE, warmup_epochs=0, final_scale=final_scale)
    # No warm-up: the peak 0.1 at step 0, `final_scale` times it at the end.
    rates = [float(keras.ops.convert_to_numpy(schedule(s))) for s in (0, 200)]
    np.testing.assert_allclose(rates, [0.1, 0.1 * final_scale], atol=1e-7)
