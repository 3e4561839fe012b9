"""TorchSGD against torch.optim.SGD, step for step, on every backend."""

import keras
import numpy as np
import pytest

from keras_imsvd.optimizers import TorchSGD

torch = pytest.importorskip("torch")

STEPS = 20


def _learning_rate(step):
    # A warm-up then a decay: the momentum rules differ only when lr changes.
    return 0.05 * min(1.0, (step + 1) / 5) * (1.0 - step / (2 * STEPS))


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = keras.ops.minimum(1.0, (step + 1.0) / 5.0)
        return 0.05 * warm * (1.0 - step / (2.0 * STEPS))


def _tensors(arrays):
    return [keras.ops.convert_to_tensor(a) for a in arrays]


def _gradient(weights, targets, step):
    # The gradient of a fixed, weight-dependent loss: tanh(w) pulled to targets.
    return [
        (np.tanh(w) - t) * (1 - np.tanh(w) ** 2) + 0.01 * np.sin(step + w)
        for w, t in zip(weights, targets)
    ]


@pytest.mark.parametrize("nesterov", [False, True])
def test_twenty_steps_agree_with_torch_sgd(rng, nesterov):
    shapes = [(5, 3), (3,), (4, 4, 2)]
    start = [rng.normal(size=s).astype("float32") for s in shapes]
    targets = [rng.normal(size=s).astype("float32") for s in shapes]

    variables = [keras.Variable(w) for w in start]
    optimizer = TorchSGD(
        _Schedule(), momentum=0.9, weight_decay=5e-4, nesterov=nesterov
    )
    parameters = [torch.tensor(w.copy(), requires_grad=True) for w in start]
    reference = torch.optim.SGD(
        parameters,
        lr=_learning_rate(0),
        momentum=0.9,
        weight_decay=5e-4,
        nesterov=nesterov,
    )
    for step in range(STEPS):
        current = [keras.ops.convert_to_numpy(v) for v in variables]
        gradients = _gradient(current, targets, step)
        optimizer.apply_gradients(zip(_tensors(gradients), variables))
        torch_gradients = _gradient(
            [p.detach().numpy() for p in parameters], targets, step
        )
        for parameter, gradient in zip(parameters, torch_gradients):
            parameter.grad = torch.tensor(gradient)
        for group in reference.param_groups:
            group["lr"] = _learning_rate(step)
        reference.step()
    for variable, parameter in zip(variables, parameters):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(variable),
            parameter.detach().numpy(),
            rtol=0,
            atol=1e-6,
        )
    # The decay is not the decoupled one: Keras' SGD ends elsewhere.
    keras_variables = [keras.Variable(w) for w in start]
    keras_sgd = keras.optimizers.SGD(_Schedule(), momentum=0.9, weight_decay=5e-4)
    for step in range(STEPS):
        current = [keras.ops.convert_to_numpy(v) for v in keras_variables]
        keras_sgd.apply_gradients(
            zip(_tensors(_gradient(current, targets, step)), keras_variables)
        )
    difference = max(
        np.abs(keras.ops.convert_to_numpy(a) - p.detach().numpy()).max()
        for a, p in zip(keras_variables, parameters)
    )
    assert difference > 1e-4


def test_excluded_variables_are_not_decayed_and_config_round_trips():
    optimizer = TorchSGD(0.1, momentum=0.5, weight_decay=0.1, nesterov=True)
    restored = TorchSGD.from_config(optimizer.get_config())
    assert (restored.momentum, restored.nesterov) == (0.5, True)
    assert float(restored.weight_decay) == pytest.approx(0.1)
    kept = keras.Variable(np.ones(2, "float32"), name="bias")
    decayed = keras.Variable(np.ones(2, "float32"), name="kernel")
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    zero = keras.ops.zeros(2)
    optimizer.apply_gradients([(zero, kept), (zero, decayed)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kept), [1, 1])
    # One step of lr 0.1 on the gradient 0.1 * w, with Nesterov: 1 - 0.1 * 0.15.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(decayed), [0.985] * 2, rtol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"momentum": 1.5}, "momentum must be a float in"),
        ({"weight_decay": -1.0}, "weight_decay must be a float >= 0"),
        ({"weight_decay": float("nan")}, "weight_decay must be a float >= 0"),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(ValueError, match=error):
        TorchSGD(**kwargs)
