"""The run folder: what it refuses, what it deletes, atomic writes, and resume."""

import json
import os

import keras
import numpy as np
import pytest

from keras_imsvd.training import UsageError
from keras_imsvd.training import resolve_config
from keras_imsvd.training.callbacks import RunRecorder
from keras_imsvd.training.callbacks import TrainingDiverged
from keras_imsvd.training.outputs import MARKER
from keras_imsvd.training.outputs import RunDirectory
from keras_imsvd.training.outputs import write_text


def _config(path, **settings):
    return resolve_config(output_dir=str(path), **settings)


def _listing(root):
    return sorted(
        os.path.relpath(os.path.join(parent, name), root)
        for parent, _, names in os.walk(root)
        for name in names
    )


def _small_model():
    inputs = keras.Input((3,))
    x = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _open_run(path, **settings):
    config = _config(path, **settings)
    run_dir = RunDirectory(str(path))
    run_dir.open(config, run_dir.check(config))
    return config, run_dir


def test_a_folder_with_other_files_is_refused_in_every_mode(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "thesis.tex").write_text("x")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.keras").write_text("mine")
    before = {p: open(tmp_path / p).read() for p in _listing(tmp_path)}
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        config = _config(tmp_path, **flags)
        with pytest.raises(UsageError, match="holds files but no keras_imsvd run"):
            RunDirectory(str(tmp_path)).check(config)
    assert {p: open(tmp_path / p).read() for p in _listing(tmp_path)} == before


def test_overwrite_deletes_only_the_files_the_run_wrote(tmp_path):
    config, run_dir = _open_run(tmp_path / "run")
    run_dir.write_text("results.txt", "table\n")
    with run_dir.writing_new_files():
        os.makedirs(run_dir.join("explain"))
        (tmp_path / "run" / "explain" / "figure.png").write_bytes(b"png")
    # A user's files, added to the run folder and to a folder of the run.
    (tmp_path / "run" / "notes.txt").write_text("mine")
    (tmp_path / "run" / "explain" / "draft.md").write_text("mine too")
    overwrite = _config(tmp_path / "run", overwrite=True)
    assert run_dir.check(overwrite) == "overwrite"
    RunDirectory(str(tmp_path / "run")).remove_run_files()
    assert _listing(tmp_path / "run") == ["explain/draft.md", "notes.txt"]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_existing_run_needs_resume_or_overwrite_and_the_same_settings(tmp_path):
    _open_run(tmp_path, epochs=3)
    with pytest.raises(UsageError, match="already holds a run"):
        RunDirectory(str(tmp_path)).check(_config(tmp_path, epochs=3))
    with pytest.raises(UsageError, match=r"different settings \(epochs\)"):
        RunDirectory(str(tmp_path)).check(_config(tmp_path, epochs=4, resume=True))
    assert RunDirectory(str(tmp_path)).check(_config(tmp_path, epochs=3, resume=True))


@pytest.mark.parametrize("damaged", [MARKER, "config.json"])
def test_damaged_run_files_give_a_usage_error(tmp_path, damaged):
    _open_run(tmp_path)
    (tmp_path / damaged).write_text('{"format_version": 1, "fil')
    with pytest.raises(UsageError, match="cannot be read"):
        RunDirectory(str(tmp_path)).check(_config(tmp_path, resume=True))


def test_marker_of_another_format_is_refused(tmp_path):
    (tmp_path / MARKER).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(UsageError, match="not a run marker of format 1"):
        RunDirectory(str(tmp_path)).check(_config(tmp_path, overwrite=True))


def test_resume_of_an_empty_or_missing_folder_starts_a_new_run(tmp_path):
    (tmp_path / "empty").mkdir()
    for name in ("empty", "missing"):
        config = _config(tmp_path / name, resume=True)
        assert RunDirectory(str(tmp_path / name)).check(config) == "new"


def test_output_dir_below_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        RunDirectory(str(tmp_path / "file")).check(_config(tmp_path / "file"))


def test_read_only_parent_is_refused(tmp_path, monkeypatch):
    # As root every folder is writable, so the access check is simulated.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(UsageError, match="cannot be written"):
        RunDirectory(str(tmp_path / "run")).check(_config(tmp_path / "run"))


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_text(str(path), "old\n")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_text(str(path), "new\n")
    assert path.read_text() == "old\n"
    assert _listing(tmp_path) == ["metrics.json"]


def test_temporary_files_of_a_killed_write_are_removed_on_open(tmp_path):
    config, run_dir = _open_run(tmp_path)
    (tmp_path / ".model.keras.tmp-4242.keras").write_bytes(b"partial")
    (tmp_path / ".mine.tmp").write_text("a user's file with a similar name")
    run_dir.open(config, "resume")
    assert ".model.keras.tmp-4242.keras" not in os.listdir(tmp_path)
    assert ".mine.tmp" in os.listdir(tmp_path)


def _train_epochs(run_dir, model, epochs, history=()):
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    recorder = RunRecorder(run_dir, history)
    model.fit(x, x[:, :1], batch_size=8, epochs=epochs, verbose=0, callbacks=[recorder])
    return recorder


def test_states_keep_the_last_three_and_resume_skips_damaged_ones(tmp_path):
    _, run_dir = _open_run(tmp_path)
    model = _small_model()
    _train_epochs(run_dir, model, epochs=5)
    assert run_dir.states() == [
        "checkpoints/epoch_0003",
        "checkpoints/epoch_0004",
        "checkpoints/epoch_0005",
    ]
    marker = json.loads((tmp_path / MARKER).read_text())
    assert "checkpoints/epoch_0001.keras" not in marker["files"]
    assert "checkpoints/epoch_0005.keras" in marker["files"]
    epoch_4 = keras.models.load_model(tmp_path / "checkpoints/epoch_0004.keras")
    # The newest model file is truncated, the one before has an empty record.
    data = (tmp_path / "checkpoints/epoch_0005.keras").read_bytes()
    (tmp_path / "checkpoints/epoch_0005.keras").write_bytes(data[: len(data) // 2])
    messages = []
    fresh = _small_model()
    epoch, history = run_dir.restore_latest_state(fresh, messages.append)
    assert epoch == 4 and [row["epoch"] for row in history] == [0, 1, 2, 3]
    assert "skipping damaged checkpoint checkpoints/epoch_0005" in messages[0]
    assert (
        messages[-1] == "resuming from checkpoints/epoch_0004.keras (epoch 4 finished)"
    )
    for restored, saved in zip(fresh.weights, epoch_4.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(restored), keras.ops.convert_to_numpy(saved)
        )
    assert int(keras.ops.convert_to_numpy(fresh.optimizer.iterations)) == 4 * 2
    (tmp_path / "checkpoints/epoch_0004.json").write_text("")
    epoch, _ = run_dir.restore_latest_state(_small_model(), messages.append)
    assert epoch == 3


class _NaNAfter(keras.callbacks.Callback):
    """Poisons the weights at the start of epoch `epoch` (counted from 0)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            weight = self.model.weights[0]
            weight.assign(keras.ops.full(weight.shape, float("nan")))


def test_divergence_ends_fit_and_saves_nothing_of_that_epoch(tmp_path):
    _, run_dir = _open_run(tmp_path)
    model = _small_model()
    x = np.ones((16, 3), "float32")
    recorder = RunRecorder(run_dir)
    with pytest.raises(TrainingDiverged, match=r"epoch 3, step 1: loss nan"):
        model.fit(
            x,
            x[:, :1],
            batch_size=8,
            epochs=5,
            verbose=0,
            callbacks=[_NaNAfter(2), recorder],
        )
    assert run_dir.states() == ["checkpoints/epoch_0001", "checkpoints/epoch_0002"]
    rows = (tmp_path / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["epoch", "0", "1"]
    last = keras.models.load_model(tmp_path / "checkpoints/epoch_0002.keras")
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in last.weights)


def test_unmeasured_values_are_left_out_of_rows_and_logs(tmp_path):
    _, run_dir = _open_run(tmp_path)
    recorder = RunRecorder(run_dir)
    recorder.set_model(_small_model())
    for epoch, knn in enumerate([float("nan"), 0.5]):
        logs = {"loss": 1.0 - epoch, "val_knn_accuracy": knn}
        recorder.on_epoch_end(epoch, logs)
        assert ("val_knn_accuracy" in logs) == (epoch == 1)
    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert lines == ["epoch,loss,val_knn_accuracy", "0,1.0,", "1,0.0,0.5"]
