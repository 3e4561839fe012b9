"""train.py: flags, bad input, a user's files, real short runs, and resume."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_imsvd import cli
from tests.conftest import REPO_ROOT
from tests.conftest import run_train_py

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
    return run_train_py(args, timeout)


def _epochs(history_csv):
    with open(history_csv) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _snapshot(root):
    return {
        os.path.relpath(os.path.join(parent, name), root): open(
            os.path.join(parent, name), "rb"
        ).read()
        for parent, _, names in os.walk(root)
        for name in names
    }


def test_help_lists_the_published_flags_and_the_recipe_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))
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
        "--overwrite",
    ):
        assert flag in flags, flag
    assert "(default: None)" not in text
    compact = " ".join(text.split())
    assert "digits 512-512, cifar10 1024-1024-1024, imagenet 8192-8160" in compact


def _fails(argv, capsys, *needles):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_flags_fail_cleanly_before_anything_is_written(tmp_path, capsys):
    out = ["--output-dir", str(tmp_path / "run")]
    for argv, needles in [
        (["--batch-size", "1"], ["--batch-size must be", "Received: 1"]),
        (["--dataset", "no_such_data"], ["unknown dataset", "no_such_data"]),
        (["--bin-size", "5"], ["--bin-size must divide", "Received: 5"]),
        (["--bin-size", "1"], ["--bin-size must be an integer >= 2", "Received: 1"]),
        (["--base-lr", "nan"], ["--base-lr must be a finite number", "nan"]),
        (["--wd", "inf"], ["--wd must be a finite number >= 0", "inf"]),
        (["--t", "-1"], ["--t must be a finite number > 0", "Received: -1.0"]),
        (["--validation-size", "0"], ["--validation-size must be", "Received: 0"]),
        (["--eval-every", "0"], ["--eval-every must be", "Received: 0"]),
        (["--resume", "--overwrite"], ["--overwrite cannot be combined"]),
    ]:
        _fails([*argv, *out], capsys, *needles)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--arch", "vgg", *out])
    assert exit_info.value.code == 2
    assert "invalid choice: 'vgg'" in capsys.readouterr().err
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
    # Decoded into memory (CIFAR views), a bad file ends the run before it
    # starts; streamed (ImageNet views), it is skipped and counted.
    in_memory = ["--views", "cifar", "--image-size", "16"]
    _fails(["--data-dir", str(broken), *in_memory, *out], capsys, "bad.jpg")
    assert not (tmp_path / "run").exists()


def test_a_users_folder_is_never_written_or_deleted(tmp_path, capsys):
    # --overwrite on a folder that holds a config.json and a user's work.
    user = tmp_path / "v"
    (user / "src").mkdir(parents=True)
    (user / "config.json").write_text("{}")
    (user / "src" / "thesis.tex").write_text("x")
    # --resume into a folder with a model.keras and a history.csv of the user's.
    other = tmp_path / "f"
    other.mkdir()
    (other / "model.keras").write_text("mine")
    (other / "history.csv").write_text("notes")
    # A corrupt config.json, with and without --overwrite.
    corrupt = tmp_path / "c"
    corrupt.mkdir()
    (corrupt / "config.json").write_text('{"epochs": ')
    before = _snapshot(tmp_path)
    for folder, flags in [
        (user, ["--overwrite"]),
        (other, ["--resume"]),
        (other, []),
        (corrupt, []),
        (corrupt, ["--overwrite"]),
    ]:
        _fails(
            ["--output-dir", str(folder), *flags],
            capsys,
            f"--output-dir {folder} holds files but no keras_imsvd run",
        )
    assert _snapshot(tmp_path) == before


def test_a_read_only_output_dir_is_a_usage_error(tmp_path, capsys, monkeypatch):
    # The tests may run as root, for whom every folder is writable.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    _fails(["--output-dir", str(tmp_path / "run")], capsys, "cannot be written")


@pytest.mark.slow
def test_short_run_writes_every_output_and_overwrite_keeps_a_users_file(tmp_path):
    out = tmp_path / "run"
    result = _train([*TINY, "--epochs", "4", "--output-dir", str(out)])
    assert result.returncode == 0, result.stderr[-3000:]
    names = set(os.listdir(out))
    assert names == {
        "keras_imsvd_run.json",
        "config.json",
        "model.keras",
        "encoder.keras",
        "history.csv",
        "metrics.json",
        "results.txt",
        "loss_curves.png",
        "logs",
        "checkpoints",
    }
    assert any((out / "logs").rglob("*tfevents*"))
    assert sorted(os.listdir(out / "checkpoints")) == [
        f"epoch_000{epoch}.{suffix}"
        for epoch in (2, 3, 4)
        for suffix in ("json", "keras")
    ]
    assert _epochs(out / "history.csv") == [0, 1, 2, 3]
    history = (out / "history.csv").read_text()
    assert "nan" not in history.lower()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["results"]) == {"IMSVD (learned)", "random init", "raw pixels"}
    for row in metrics["results"].values():
        assert 0.0 <= row["knn"] <= 1.0 and 0.0 <= row["linear_probe"] <= 1.0
    # Digits are easy: raw pixels are well above chance (0.1) with kNN.
    assert metrics["results"]["raw pixels"]["knn"] > 0.8
    assert metrics["config"]["epochs"] == 4 and metrics["epochs_trained"] == 4
    assert "nan" not in result.stdout.lower()
    for line in ("IMSVD (learned)", "random init", "raw pixels"):
        assert line in result.stdout

    (out / "notes.txt").write_text("mine")
    (out / "logs" / "mine.txt").write_text("mine too")
    again = _train([*TINY, "--epochs", "1", "--output-dir", str(out), "--overwrite"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "logs" / "mine.txt").read_text() == "mine too"
    assert sorted(os.listdir(out / "checkpoints")) == [
        "epoch_0001.json",
        "epoch_0001.keras",
    ]
    assert _epochs(out / "history.csv") == [0]


@pytest.mark.slow
def test_a_diverged_run_exits_non_zero_and_saves_no_epoch(tmp_path):
    out = tmp_path / "run"
    result = _train([*TINY, "--base-lr", "1e30", "--output-dir", str(out)])
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"train\.py: error: training diverged in epoch 1, step \d+: loss nan; no "
        r"epoch finished, so no checkpoint was written",
        last,
    ), last
    assert not (out / "checkpoints").exists()
    assert not (out / "model.keras").exists() and not (out / "metrics.json").exists()


@pytest.mark.slow
def test_killed_run_resumes_from_its_newest_whole_checkpoint(tmp_path):
    import keras

    out = tmp_path / "run"
    args = [*TINY, "--epochs", "5", "--output-dir", str(out)]
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            # history.csv is written just after each epoch's checkpoint.
            if (out / "checkpoints" / "epoch_0003.json").exists() and (
                len(_epochs(out / "history.csv")) >= 3
            ):
                break
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = _epochs(out / "history.csv")
    assert 3 <= len(done) < 5
    # The newest checkpoint is damaged, as by a disk that filled up.
    newest = sorted((out / "checkpoints").glob("epoch_*.keras"))[-1]
    epoch = int(newest.stem.split("_")[1])
    newest.write_bytes(newest.read_bytes()[:1000])
    assert _train(args).returncode == 2  # the folder holds a run: needs --resume
    result = _train([*args, "--resume"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"skipping damaged checkpoint checkpoints/epoch_{epoch:04d}" in result.stdout
    assert (
        f"resuming from checkpoints/epoch_{epoch - 1:04d}.keras "
        f"(epoch {epoch - 1} finished)"
    ) in result.stdout
    assert _epochs(out / "history.csv") == [0, 1, 2, 3, 4]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 5
    model = keras.models.load_model(out / "model.keras")
    steps_per_epoch = 256 // 64
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == (
        5 * steps_per_epoch
    )


@pytest.mark.slow
def test_mixed_precision_auto_and_a_class_too_small_for_the_few_label_probe(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    for name, count, colour in (("red", 40, 0), ("green", 40, 1), ("blue", 6, 2)):
        (folder / name).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 60, size=(20, 20, 3), dtype=np.uint8)
            image[..., colour] += 150
            Image.fromarray(image).save(folder / name / f"{i}.png")
    out = tmp_path / "run"
    result = _train(
        [
            "--data-dir",
            str(folder),
            "--arch",
            "small_convnet",
            "--mlp",
            "64-64",
            "--bin-size",
            "16",
            "--image-size",
            "16",
            "--views",
            "cifar",
            "--batch-size",
            "16",
            "--validation-size",
            "20",
            "--epochs",
            "2",
            "--probe-epochs",
            "2",
            "--mixed-precision",
            "--optimizer",
            "sgd",
            "--base-lr",
            "0.05",
            "--verbose",
            "0",
            "--output-dir",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["mixed_precision"] == "auto"
    note = metrics["notes"]["linear_probe_10_per_class"]
    assert "fewer than 10 training images are left out: [0]" in note
    # Colour alone separates the classes: raw pixels find them.
    assert metrics["results"]["raw pixels"]["knn"] >= 0.9
    for row in metrics["results"].values():
        assert all(np.isfinite(value) for value in row.values())
