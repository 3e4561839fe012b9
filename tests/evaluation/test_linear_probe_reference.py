"""Linear probe: weights and statistics against a float64 NumPy transcription.

The probe is trained on a small set, where `linear_probe` runs all passes as
one Keras epoch over a seeded, unshuffled order: training is deterministic and
can be replayed step by step here.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_imsvd.evaluation import linear_probe

# Keras trains in float32, the transcription runs in float64. Over at most ten
# steps of well-conditioned features (unit scale), the weights agree to about
# 1e-6 of their size; a wrong schedule or momentum moves them by 1e-2 or more.
RTOL = 1e-4
ATOL = 1e-5


def _statistics(features, normalize):
    """Mean and variance of the probe's normalisation, float64 `(F,)` each."""
    mean = features.mean(axis=0)
    centred = features - mean
    if normalize == "per_feature":
        variance = (centred**2).mean(axis=0)
    else:  # one scale: the mean square of all centred entries
        variance = np.full_like(mean, (centred**2).mean())
    # A constant feature is only centred.
    return mean, np.where(variance > 1e-12, variance, 1.0)


def _cross_entropy(logits, labels):
    """Mean cross-entropy of a batch and its gradient with respect to logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    loss = -log_softmax[rows, labels].mean()
    gradient = np.exp(log_softmax)
    gradient[rows, labels] -= 1.0
    return loss, gradient / len(labels)


def _train(x, y, kernel, order, batch_size, learning_rate, momentum=0.9):
    """SGD with momentum on softmax(x W + b), cosine decay over the steps.

    Returns the final `(kernel, bias)` and the loss of each step.
    """
    x, y = x[order], y[order]
    starts = range(0, len(order), batch_size)
    steps = len(starts)
    bias = np.zeros(kernel.shape[1])
    velocity = [np.zeros_like(kernel), np.zeros_like(bias)]
    losses = []
    for step, start in enumerate(starts):
        batch, labels = x[start : start + batch_size], y[start : start + batch_size]
        loss, grad_logits = _cross_entropy(batch @ kernel + bias, labels)
        losses.append(loss)
        gradients = [batch.T @ grad_logits, grad_logits.sum(axis=0)]
        rate = learning_rate * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        for v, g in zip(velocity, gradients):
            v *= momentum
            v -= rate * g
        kernel = kernel + velocity[0]
        bias = bias + velocity[1]
    return kernel, bias, losses


def _problem(num_train, num_features, num_classes, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(num_train) % num_classes
    centres = rng.normal(size=(num_classes, num_features))
    features = 2.0 + centres[labels] + rng.normal(size=(num_train, num_features))
    features[:, -1] = 3.0  # a constant feature
    return features.astype("float32"), labels


def _layers(model):
    normalization = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)
    ]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return normalization, dense[0]


# (batch_size, epochs, normalize): full batches, whose order does not matter,
# and batches of 5 that straddle the passes, replayed in the seeded order.
@pytest.mark.parametrize(
    "batch_size, epochs, normalize", [(12, 6, "per_feature"), (5, 4, True)]
)
def test_training_matches_float64_transcription(batch_size, epochs, normalize):
    num_train, num_features, num_classes, seed, learning_rate = 12, 4, 3, 7, 0.5
    x, y = _problem(num_train, num_features, num_classes, seed=1)
    result = linear_probe(
        x,
        y,
        x[:3],
        y[:3],
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        normalize=normalize,
        seed=seed,
    )
    # A set this small runs every pass in one Keras epoch, without shuffling.
    assert result["passes_per_history_entry"] == epochs

    mean, variance = _statistics(x.astype("float64"), normalize)
    normalization, dense = _layers(result["model"])
    got_mean = ops.convert_to_numpy(normalization[0].mean).reshape(-1)
    got_variance = ops.convert_to_numpy(normalization[0].variance).reshape(-1)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(got_variance, variance, rtol=1e-6)

    # The probe's own initial kernel: the same seeded initialiser.
    initial = keras.initializers.RandomNormal(stddev=0.01, seed=seed)(
        (num_features, num_classes)
    )
    initial = ops.convert_to_numpy(initial).astype("float64")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(num_train) for _ in range(epochs)])
    normalised = (x - mean) / np.sqrt(variance)
    kernel, bias, losses = _train(
        normalised, y, initial, order, batch_size, learning_rate
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(dense.kernel), kernel, rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(dense.bias), bias, rtol=RTOL, atol=ATOL
    )
    if batch_size == num_train:
        # The logged loss of the single Keras epoch: the mean over its steps.
        np.testing.assert_allclose(
            result["history"]["loss"], [np.mean(losses)], rtol=RTOL
        )
