"""train.py --distribute data-parallel with real local processes.

Each test runs the commands of docs/distributed.md on the bundled digits: torchrun
with 2 processes (PyTorch), 2 processes joined by KERAS_DISTRIBUTION_* (JAX, gloo
CPU collectives), and 4 simulated devices in one process (JAX). Each runs once,
under the suite of its own backend.
"""

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import pytest

import keras_imsvd  # noqa: F401  (registers the classes that .keras files name)
from tests.conftest import REPO_ROOT

TRAIN = str(REPO_ROOT / "train.py")
SHORT = ["--distribute", "data-parallel", "--probe-epochs", "2", "--verbose", "2"]
# 1400 training digits in global batches of 128.
STEPS_PER_EPOCH = 10
OUTPUTS = {
    "keras_imsvd_run.json",
    "config.json",
    "checkpoints",
    "history.csv",
    "logs",
    "loss_curves.png",
    "model.keras",
    "encoder.keras",
    "results.txt",
    "metrics.json",
}


def _only_on(backend):
    return pytest.mark.skipif(
        keras.backend.backend() != backend,
        reason=f"runs once, in the {backend} suite",
    )


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DIST")}
    env.pop("XLA_FLAGS", None)
    return {**env, **extra}


def _check_run(out, epochs, logs):
    assert set(os.listdir(out)) == OUTPUTS
    with open(out / "history.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == list(range(epochs))
    model = keras.models.load_model(out / "model.keras")
    iterations = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    assert iterations == epochs * STEPS_PER_EPOCH
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_trained"] == epochs
    text = "\n".join(logs)
    # One table, printed by the chief alone.
    rows = re.findall(r"^IMSVD \(learned\) +\d", text, flags=re.MULTILINE)
    assert len(rows) == 1, text[-3000:]
    assert "ran out of data" not in text
    if _fingerprints(text):
        _check_same_weights(text)


def _fingerprints(text):
    """`(process, weights fingerprint)` pairs that the processes logged."""
    return re.findall(r"process (\d) of 2 finished; weights fingerprint (\w+)", text)


def _check_same_weights(text):
    """Both processes finished, with the same weights."""
    fingerprints = _fingerprints(text)
    assert sorted(p for p, _ in fingerprints) == ["0", "1"], text[-3000:]
    assert len({f for _, f in fingerprints}) == 1, fingerprints


@pytest.mark.slow
@_only_on("torch")
def test_torchrun_two_processes_a_kill_and_a_resume(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        TRAIN,
        *SHORT,
        "--epochs",
        "3",
        "--output-dir",
        str(out),
    ]
    runner = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(KERAS_BACKEND="torch"),
    )
    deadline = time.time() + 400
    while not (out / "checkpoints" / "epoch_0001.json").exists():
        assert runner.poll() is None, runner.stdout.read()[-3000:]
        assert time.time() < deadline, "no epoch finished"
        time.sleep(0.2)
    workers = subprocess.run(
        ["ps", "-o", "pid=,args=", "--ppid", str(runner.pid)],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    rank_1 = [int(line.split()[0]) for line in workers if TRAIN in line][1]
    os.kill(rank_1, signal.SIGKILL)
    # The other process does not wait forever: the run ends with an error.
    log, _ = runner.communicate(timeout=300)
    assert runner.returncode != 0, log[-3000:]
    assert "epoch_0001" in " ".join(os.listdir(out / "checkpoints"))

    resumed = subprocess.run(
        [*command, "--resume"],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(KERAS_BACKEND="torch"),
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming from checkpoints/epoch_000" in resumed.stdout
    _check_run(out, 3, [resumed.stdout, resumed.stderr])
    assert "weights fingerprint" in resumed.stdout


@pytest.mark.slow
@_only_on("jax")
def test_jax_two_processes_with_keras_distribution_variables(tmp_path):
    out = tmp_path / "run"
    port = _free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, TRAIN, *SHORT, "--epochs", "2", "--output-dir", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(
                KERAS_BACKEND="jax",
                KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                KERAS_DISTRIBUTION_PROCESS_ID=str(index),
            ),
        )
        for index in range(2)
    ]
    logs = [p.communicate(timeout=600)[0] for p in processes]
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    _check_run(out, 2, logs)
    assert "weights fingerprint" in logs[1]


@pytest.mark.slow
@_only_on("jax")
def test_jax_four_devices_in_one_process_evaluating_every_epoch(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            TRAIN,
            *SHORT,
            "--epochs",
            "2",
            "--eval-every",
            "1",
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(
            KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=4"
        ),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _check_run(out, 2, [result.stdout, result.stderr])
    with open(out / "history.csv") as f:
        knn = [float(row["val_knn_accuracy"]) for row in csv.DictReader(f)]
    assert len(knn) == 2 and all(0.5 < value <= 1 for value in knn)


@pytest.mark.slow
@_only_on("torch")
def test_torchrun_streams_a_folder_with_unreadable_files_in_step(tmp_path):
    """Each process reads its own share of a folder streamed from disk; the
    unreadable files fall unevenly on the shares, and every process still
    takes the same steps in each epoch."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in range(3):
        folder = tmp_path / "images" / f"class_{label}"
        folder.mkdir(parents=True)
        for i in range(30):
            image = rng.integers(0, 80, (28, 24, 3), dtype=np.uint8)
            image[..., label] += 150
            Image.fromarray(image).save(folder / f"{i}.jpg")
        for i in range(4):
            (folder / f"bad_{i}.jpg").write_bytes(b"not an image" * 5)
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            TRAIN,
            *SHORT,
            "--data-dir",
            str(tmp_path / "images"),
            "--arch",
            "small_convnet",
            "--mlp",
            "32-32",
            "--bin-size",
            "16",
            "--image-size",
            "16",
            "--batch-size",
            "16",
            "--validation-size",
            "15",
            "--epochs",
            "2",
            "--output-dir",
            str(out),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(KERAS_BACKEND="torch"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # 87 training files (12 unreadable among them), global batch 16.
    assert "87 training and 15 held-out images" in result.stdout
    assert "unreadable image(s)" in result.stdout
    model = keras.models.load_model(out / "model.keras")
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2 * 5
    _check_same_weights(result.stdout)
