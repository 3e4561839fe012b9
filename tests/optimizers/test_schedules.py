"""published_schedule against a NumPy transcription of the published code."""

import math

import keras
import numpy as np
import pytest

from keras_imsvd.optimizers import published_schedule


def _numpy_schedule(step, base, batch, steps_per_epoch, epochs, warmup, final):
    """adjust_learning_rate of the published PyTorch scripts, in float64."""
    peak = base * batch / 256
    total = epochs * steps_per_epoch
    warmup_steps = warmup * steps_per_epoch
    if step < warmup_steps:
        return peak * step / warmup_steps
    step = min(step, total) - warmup_steps
    q = 0.5 * (1 + math.cos(math.pi * step / (total - warmup_steps)))
    return peak * q + peak * final * (1 - q)


@pytest.mark.parametrize(
    "base, batch, steps_per_epoch, epochs, warmup, final",
    [(0.6, 2048, 625, 100, 10, 0.001), (0.1, 512, 97, 800, 10, 0.001)],
)
def test_matches_numpy(base, batch, steps_per_epoch, epochs, warmup, final):
    schedule = published_schedule(
        base, batch, steps_per_epoch, epochs, warmup_epochs=warmup, final_scale=final
    )
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    total = epochs * steps_per_epoch
    w = warmup * steps_per_epoch
    peak = base * batch / 256
    steps = [0, 1, w // 2, w - 1, w, w + 1, (w + total) // 2, total - 1, total]
    for step in steps:
        want = _numpy_schedule(
            step, base, batch, steps_per_epoch, epochs, warmup, final
        )
        got = float(schedule(step))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9, err_msg=str(step))
    # The landmarks, by hand.
    assert float(schedule(0)) == 0.0
    np.testing.assert_allclose(float(schedule(w)), peak, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(total)), final * peak, rtol=1e-4)
    np.testing.assert_allclose(float(schedule(total + 500)), final * peak, rtol=1e-4)


def test_no_warmup():
    schedule = published_schedule(0.2, 256, 10, 5, warmup_epochs=0)
    np.testing.assert_allclose(float(schedule(0)), 0.2, rtol=1e-6)
    np.testing.assert_allclose(
        float(schedule(25)), 0.2 * (0.5 + 0.5 * 0.001), rtol=1e-5
    )
    np.testing.assert_allclose(float(schedule(50)), 0.2 * 0.001, rtol=1e-4)


def test_drives_an_optimizer():
    schedule = published_schedule(
        0.1, 256, steps_per_epoch=2, epochs=3, warmup_epochs=1
    )
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    variable = keras.Variable(np.zeros((2,), "float32"))
    seen = []
    for _ in range(3):
        seen.append(float(optimizer.learning_rate))
        optimizer.apply([keras.ops.ones((2,))], [variable])
    np.testing.assert_allclose(seen, [0.0, 0.05, 0.1], rtol=1e-6)


_BAD_ARGUMENTS = [
    (dict(base_learning_rate=0.0), "base_learning_rate"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=2.5), "batch_size"),
    (dict(steps_per_epoch=0), "steps_per_epoch"),
    (dict(epochs=0), "epochs"),
    (dict(warmup_epochs=20), "warmup_epochs"),
    (dict(warmup_epochs=-1), "warmup_epochs"),
    (dict(final_scale=1.5), "final_scale"),
]


def test_bad_arguments():
    # One test, not one per case: each test pays a keras clear_session.
    for kwargs, message in _BAD_ARGUMENTS:
        args = dict(
            base_learning_rate=0.1, batch_size=256, steps_per_epoch=10, epochs=20
        )
        args.update(kwargs)
        with pytest.raises((ValueError, TypeError), match=message):
            published_schedule(**args)
