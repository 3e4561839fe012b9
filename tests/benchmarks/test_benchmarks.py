"""Smoke tests of the benchmark helpers: baselines, published loss, PIL views."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import baselines  # noqa: E402
import pil_views  # noqa: E402


def _standardize(z):
    return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)


def test_barlow_twins_loss_matches_numpy(rng):
    z1, z2 = rng.normal(size=(2, 16, 8))
    c = _standardize(z1).T @ _standardize(z2) / 16
    off = np.sum(c**2) - np.sum(np.diag(c) ** 2)
    expected = np.sum((1 - np.diag(c)) ** 2) + 0.0051 * off
    total, _ = baselines.barlow_twins_loss(z1.astype("float32"), z2.astype("float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(total), expected, rtol=1e-4)


def test_vicreg_loss_matches_numpy(rng):
    z1, z2 = rng.normal(size=(2, 16, 8))
    expected = 25 * np.mean((z1 - z2) ** 2)
    for z in (z1, z2):
        centred = z - z.mean(0)
        std = np.sqrt(centred.var(0, ddof=1) + 1e-4)
        expected += 25 * np.mean(np.maximum(0, 1 - std)) / 2
        cov = centred.T @ centred / 15
        expected += (np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / 8
    total, _ = baselines.vicreg_loss(z1.astype("float32"), z2.astype("float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(total), expected, rtol=1e-4)


def test_published_transcription_matches_library(rng):
    torch = pytest.importorskip("torch")
    from published_loss import PublishedJointCrossEntropy

    from keras_imsvd.losses import joint_cross_entropy

    logits = rng.normal(size=(2, 8, 4, 5)).astype("float32")
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = PublishedJointCrossEntropy(4, 5)(
        torch.from_numpy(p[0]), torch.from_numpy(p[1])
    )
    total, _ = joint_cross_entropy(p[0], p[1])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(total), float(expected), rtol=1e-5
    )


def test_pil_views_shapes(rng):
    from PIL import Image

    image = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    first, second = pil_views.cifar_pair(image)
    assert first.shape == second.shape == (32, 32, 3)
    first, second = pil_views.imagenet_pair(image, size=24)
    assert first.shape == second.shape == (24, 24, 3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    ["loss_speed.py", "train_step.py", "augment_speed.py", "cifar10_accuracy.py"],
)
def test_scripts_have_help(script):
    out = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "--quick" in out.stdout


def test_barlow_twins_bias_rate_scales_only_unadapted_variables(rng):
    # Barlow Twins steps biases and BatchNorm parameters at lr x 0.024: the
    # scaled LARS must move a 1-D variable exactly as plain LARS at that rate,
    # and leave the adapted (2-D) variable's step unchanged.
    import cifar10_accuracy

    from keras_imsvd.optimizers import LARS

    scale = 0.024
    kernel0, bias0 = rng.normal(size=(3, 4)), rng.normal(size=(4,))
    grads = [(rng.normal(size=(3, 4)), rng.normal(size=(4,))) for _ in range(3)]

    def run(optimizer, bias_scale):
        kernel = keras.Variable(kernel0.astype("float32"), name="kernel")
        bias = keras.Variable(bias0.astype("float32"), name="bias")
        for g_kernel, g_bias in grads:
            optimizer.apply_gradients(
                [
                    (keras.ops.convert_to_tensor(g_kernel.astype("float32")), kernel),
                    (
                        keras.ops.convert_to_tensor(
                            (bias_scale * g_bias).astype("float32")
                        ),
                        bias,
                    ),
                ]
            )
        return [keras.ops.convert_to_numpy(v) for v in (kernel, bias)]

    settings = {"learning_rate": 0.5, "momentum": 0.9, "weight_decay": 1e-3}
    scaled = run(cifar10_accuracy._scaled_lars(scale)(**settings), 1.0)
    plain = run(LARS(**settings), 1.0)
    expected_bias = run(LARS(**settings), scale)[1]
    np.testing.assert_allclose(scaled[0], plain[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scaled[1], expected_bias, rtol=1e-6, atol=1e-7)
    assert np.max(np.abs(scaled[1] - plain[1])) > 1e-2
