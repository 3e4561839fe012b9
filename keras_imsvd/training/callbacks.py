"""The callback that keeps a run's folder in step with its training."""

import math

import keras
import numpy as np


class TrainingDiverged(Exception):
    """The loss or the weights stopped being finite; nothing of the epoch is saved.

    Args:
        epoch: the epoch (counted from 1) in which it happened.
        step: the step within the epoch (counted from 1), or `None` when the
            weights were found non-finite at the end of the epoch.
        what: what was found, e.g. `"loss nan"`.
    """

    def __init__(self, epoch, step, what):
        where = f"epoch {epoch}" + (f", step {step}" if step is not None else "")
        super().__init__(f"training diverged in {where}: {what}")
        self.epoch = epoch
        self.step = step


def _finite_weights(model):
    return all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.weights)


class RunRecorder(keras.callbacks.Callback):
    """Checks each step for divergence and saves each finished epoch.

    At the end of each batch a non-finite loss raises `TrainingDiverged`, which
    ends `fit` before the epoch is saved. At the end of each epoch, once the
    weights are checked to be finite, the epoch's row joins the history, the
    state goes to `run_dir.save_state`, and `history.csv` is rewritten. Logged
    values that are NaN because they were not measured this epoch (such as
    `val_knn_accuracy` between evaluations) are left out of the row and taken
    out of the logs, so progress lines do not show them.

    Place it after the callbacks that add to the logs (such as `KNNMonitor`).

    Args:
        run_dir: the `RunDirectory` of the run.
        history: the rows of the epochs already finished (on resume).
        keep: how many epoch states to keep.
    """

    def __init__(
        self, run_dir, history=(), keep=3, measured_only=("val_knn_accuracy",)
    ):
        super().__init__()
        self.run_dir = run_dir
        self.history = list(history)
        self.keep = keep
        self.measured_only = measured_only
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(keras.ops.convert_to_numpy(loss))
        if not math.isfinite(value):
            raise TrainingDiverged(self._epoch + 1, batch + 1, f"loss {value}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        row = {"epoch": epoch}
        for key in list(logs):
            value = float(keras.ops.convert_to_numpy(logs[key]))
            if math.isnan(value) and key in self.measured_only:
                del logs[key]
                continue
            if not math.isfinite(value) and key.endswith("loss"):
                raise TrainingDiverged(epoch + 1, None, f"{key} {value}")
            row[key] = value
        if not _finite_weights(self.model):
            raise TrainingDiverged(epoch + 1, None, "non-finite weights")
        self.history.append(row)
        self.run_dir.save_state(self.model, epoch + 1, self.history, keep=self.keep)
        self.run_dir.write_history(self.history)
        self.run_dir.record_new_files("logs")
