"""train.py with `--augment-on device`, `--jit-compile`, and loss scaling."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_imsvd import cli
from keras_imsvd.data._image_batches import ImageBatches
from keras_imsvd.optimizers import LARS
from keras_imsvd.optimizers import TorchSGD
from keras_imsvd.training import model as model_lib
from keras_imsvd.training.config import resolve_config
from tests.conftest import REPO_ROOT
from tests.models.test_device_views import BLOCK_TENSORFLOW

FLOAT16_UNIT_ROUNDOFF = 2.0**-11


def test_flags_reach_the_config():
    args = cli.build_parser().parse_args(
        ["--augment-on", "device", "--jit-compile", "off"]
    )
    config = cli.config_from_args(args)
    assert (config.augment_on, config.jit_compile) == ("device", "off")
    defaults = cli.config_from_args(cli.build_parser().parse_args([]))
    assert (defaults.augment_on, defaults.jit_compile) == ("data", "auto")
    # Where the views are made does not change what is trained: a run may
    # resume with the other choice.
    assert "augment_on" not in defaults.training_settings()


@pytest.mark.parametrize("choice", ["on", "off", "auto"])
def test_jit_compile_reaches_the_model(choice):
    config = resolve_config(epochs=2, jit_compile=choice)
    model = model_lib.build_model(config, (16, 16, 1), steps_per_epoch=4)
    if choice == "auto":
        reference = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        reference.compile(optimizer="sgd", loss="mse", jit_compile="auto")
        # Keras' own resolution for this backend and machine.
        assert model.jit_compile == reference.jit_compile
    else:
        assert model.jit_compile is (choice == "on")


@pytest.mark.slow
def test_device_views_model_reads_the_stored_images():
    config = resolve_config(epochs=2, augment_on="device")
    model = model_lib.build_model(
        config, (16, 16, 1), steps_per_epoch=4, data_shape=(8, 8, 1)
    )
    assert model.views is not None
    assert tuple(model.encoder.input_shape) == (None, 16, 16, 1)
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype("float32")
    history = model.fit(x, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_image_batches_are_seeded_permutations_without_the_remainder():
    images = np.arange(10, dtype="uint8").reshape(10, 1, 1, 1)
    batches = ImageBatches(images, batch_size=4, seed=3)
    assert len(batches) == 2  # the last 2 images are dropped, as in tf.data
    epochs = []
    for _ in range(3):
        seen = np.concatenate([batches[i][0].ravel() for i in range(len(batches))])
        assert len(set(seen.tolist())) == 8  # no image twice in an epoch
        epochs.append(seen)
        batches.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1])
    again = ImageBatches(images, batch_size=4, seed=3)
    np.testing.assert_array_equal(again[0][0].ravel(), epochs[0][:4])
    with pytest.raises(ValueError, match="batch_size=11"):
        ImageBatches(images, batch_size=11)


@pytest.mark.parametrize("optimizer", ["torch_sgd", "lars"])
def test_mixed_float16_scales_the_loss(optimizer):
    previous = keras.config.dtype_policy()
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1)).astype("float32")
    losses = {}
    try:
        for policy in ("float32", "mixed_float16"):
            keras.config.set_dtype_policy(policy)
            keras.utils.set_random_seed(0)
            encoder = keras.Sequential(
                [
                    keras.Input((8, 8, 1)),
                    keras.layers.Flatten(),
                    keras.layers.Dense(16, activation="relu"),
                ]
            )
            model = keras_imsvd_model(encoder)
            make = {"torch_sgd": TorchSGD, "lars": LARS}[optimizer]
            model.compile(optimizer=make(learning_rate=0.01, momentum=0.9))
            history = model.fit(
                {"view_1": x, "view_2": x[:, ::-1]}, batch_size=32, verbose=0
            )
            losses[policy] = history.history["loss"][0]
            if policy == "mixed_float16":
                assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
                assert isinstance(model.optimizer.inner_optimizer, make)
                scale = float(
                    keras.ops.convert_to_numpy(model.optimizer.scale_loss(1.0))
                )
                assert np.isfinite(scale) and scale > 1.0
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.isfinite(losses["mixed_float16"])
    # The loss is computed in float32 from float16 codes: its error is a few
    # unit roundoffs of the codes, as in tests/test_mixed_precision.py.
    np.testing.assert_allclose(
        losses["mixed_float16"], losses["float32"], rtol=4 * FLOAT16_UNIT_ROUNDOFF
    )


def keras_imsvd_model(encoder):
    import keras_imsvd

    return keras_imsvd.IMSVDModel(
        encoder, projector="32-32", bin_size=8, temperature=0.2
    )


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow", reason="the backend is TensorFlow"
)
def test_a_device_views_run_imports_no_tensorflow(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCK_TENSORFLOW)
    output = tmp_path / "run"
    args = ["--augment-on", "device", "--epochs", "1", "--limit", "256"]
    args += ["--batch-size", "128", "--mlp", "64-64", "--probe-epochs", "2"]
    args += ["--eval-every", "1", "--verbose", "0", "--output-dir", str(output)]
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no TensorBoard logs" in result.stdout
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["backend"] == keras.backend.backend()
    knn = metrics["results"]["IMSVD (learned)"]["knn"]
    assert 0.5 < knn <= 1.0  # ten classes, chance 0.1: far above after an epoch
    assert (output / "model.keras").is_file()
    # --explain reads views through tf.data: a clear error, exit 2.
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), *args[:-1], str(tmp_path / "x")]
        + ["--explain"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 2
    assert "--explain needs TensorFlow" in result.stderr
    assert not (tmp_path / "x").exists()
