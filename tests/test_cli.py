"""train.py: flags, bad input, a real short run, and resume after a crash."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_imsvd import cli
from tests.conftest import REPO_ROOT

TINY = [
    "--epochs",
    "3",
    "--limit",
    "256",
    "--batch-size",
    "64",
    "--mlp",
    "64-64",
    "--probe-epochs",
    "3",
    "--eval-every",
    "2",
    "--verbose",
    "0",
]


def _train(args, timeout=400):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ},
    )


def _epochs(history_csv):
    with open(history_csv) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_help_lists_the_published_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in (
        "--arch",
        "--mlp",
        "--bin-size",
        "--epochs",
        "--batch-size",
        "--base-lr",
        "--wd",
        "--dia-coeff",
        "--off-coeff",
        "--ti-coeff",
        "--t",
        "--dataset",
        "--data-dir",
        "--image-size",
        "--views",
        "--optimizer",
        "--warmup-epochs",
        "--mixed-precision",
        "--seed",
        "--output-dir",
        "--eval-every",
        "--resume",
    ):
        assert flag in text


def _fails(argv, capsys, *needles):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_flags_fail_cleanly(tmp_path, capsys):
    out = ["--output-dir", str(tmp_path / "run")]
    _fails(["--arch", "vgg", *out], capsys, "unknown architecture", "'vgg'")
    _fails(
        ["--batch-size", "1", *out], capsys, "--batch-size", "Received: --batch-size 1"
    )
    _fails(
        ["--dataset", "no_such_data", *out], capsys, "unknown dataset", "no_such_data"
    )
    _fails(["--bin-size", "5", *out], capsys, "bin_size must divide", "bin_size=5")
    assert not (tmp_path / "run").exists()


def test_bad_data_folders_fail_cleanly(tmp_path, capsys):
    out = ["--output-dir", str(tmp_path / "run")]
    _fails(["--data-dir", str(tmp_path / "missing"), *out], capsys, "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(["--data-dir", str(empty), *out], capsys, str(empty))
    flat = tmp_path / "flat"
    flat.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(flat / "a.png")
    _fails(["--data-dir", str(flat), *out], capsys, "sub-folder")
    broken = tmp_path / "broken"
    for name in ("cat", "dog"):
        (broken / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((12, 10, 3), 40 * i, np.uint8)).save(
                broken / name / f"{i}.png"
            )
    (broken / "dog" / "bad.jpg").write_bytes(b"not an image")
    _fails(["--data-dir", str(broken), *out], capsys, "bad.jpg")
    assert not (tmp_path / "run").exists()


def test_output_dir_holding_another_run_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "digits", "epochs": 1}))
    _fails(["--output-dir", str(run)], capsys, "already holds a run", "--resume")
    _fails(["--output-dir", str(run), "--resume"], capsys, "different settings")


@pytest.mark.slow
def test_short_run_writes_every_output(tmp_path):
    out = tmp_path / "run"
    result = _train([*TINY, "--output-dir", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    for name in (
        "model.keras",
        "encoder.keras",
        "history.csv",
        "metrics.json",
        "loss_curves.png",
        "config.json",
    ):
        assert (out / name).is_file(), name
    assert any((out / "logs").rglob("*tfevents*"))
    assert sorted(os.listdir(out / "checkpoints")) == [
        "epoch_0001.keras",
        "epoch_0002.keras",
        "epoch_0003.keras",
    ]
    assert _epochs(out / "history.csv") == [0, 1, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["results"]) == {"IMSVD (learned)", "random init", "raw pixels"}
    for row in metrics["results"].values():
        assert 0.0 <= row["knn"] <= 1.0 and 0.0 <= row["linear_probe"] <= 1.0
    # Digits are easy: raw pixels are well above chance (0.1) with kNN.
    assert metrics["results"]["raw pixels"]["knn"] > 0.8
    assert metrics["config"]["epochs"] == 3
    for line in ("IMSVD (learned)", "random init", "raw pixels"):
        assert line in result.stdout


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_epoch(tmp_path):
    import keras

    out = tmp_path / "run"
    args = [*TINY, "--epochs", "5", "--output-dir", str(out)]
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metadata = out / "backup" / "training_metadata.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if metadata.exists():
                try:
                    if json.loads(metadata.read_text())["epoch"] >= 2:
                        break
                except (ValueError, KeyError):
                    pass
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = _epochs(out / "history.csv")
    assert 2 <= len(done) < 5
    # The checkpoints written before the crash are intact.
    checkpoints = sorted((out / "checkpoints").glob("epoch_*.keras"))
    keras.models.load_model(checkpoints[-1])

    assert _train(args).returncode == 2  # the folder holds a run: needs --resume
    result = _train([*args, "--resume"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming after epoch" in result.stdout
    assert _epochs(out / "history.csv") == [0, 1, 2, 3, 4]
    model = keras.models.load_model(out / "model.keras")
    steps_per_epoch = 256 // 64
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == (
        5 * steps_per_epoch
    )
