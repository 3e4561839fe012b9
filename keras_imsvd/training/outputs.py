"""The output folder of a run: what it holds, how it is written, and resumed.

A folder is recognised as a run of ours by its marker file, `keras_imsvd_run.json`,
which carries a format version and the list of every file the run wrote. Nothing
else counts: a folder that holds other files and no marker is never written into,
and `--overwrite` deletes only the files the marker lists, one by one, never the
folder. Every file is written to a temporary name beside it and renamed into
place, so a kill mid-write leaves the previous version whole.

Each finished epoch leaves a state in `checkpoints/`: `epoch_NNNN.keras` (model
and optimizer) and then `epoch_NNNN.json` (the epoch number and the history up to
it). A state counts only when both are there and load; resuming takes the newest
such state and says which one.
"""

import contextlib
import csv
import io
import json
import os
import re

from keras_imsvd.training.config import UsageError

MARKER = "keras_imsvd_run.json"
FORMAT_VERSION = 1
CHECKPOINTS = "checkpoints"
_TEMP = re.compile(r"^\..+\.tmp-\d+(\.[A-Za-z0-9]+)*$")
_STATE = re.compile(r"^epoch_(\d{4,})\.json$")


def _temporary_name(path):
    folder, name = os.path.split(path)
    suffix = "".join(re.findall(r"\.[A-Za-z0-9]+$", name))
    # Keeps the suffix: Keras and matplotlib choose the format from it.
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}{suffix}")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it into place on success.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    temporary = _temporary_name(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path, text):
    """Writes `text` to `path` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, value):
    write_text(path, json.dumps(value, indent=2) + "\n")


def read_json(path, what):
    """The JSON value in `path`; `UsageError` naming the file if it is damaged."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} ({what}) cannot be read: {error}") from None


class RunDirectory:
    """The output folder of one run.

    Args:
        path: the folder.
        chief: whether this process writes. In a multi-process run only the
            chief (process 0) writes; on the others every write is skipped.
        collective_saves: whether saving a model needs every process (its
            weights span the devices of all processes, as in multi-process
            JAX); the other processes then save into a temporary folder
            outside the run, deleted at once.
    """

    def __init__(self, path, chief=True, collective_saves=False):
        self.path = path
        self.chief = chief
        self.collective_saves = collective_saves
        self._files = []

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    # Checks, before anything is written.

    def marker(self):
        """The parsed marker, or `None` where the folder holds no run of ours."""
        path = self.join(MARKER)
        if not os.path.lexists(path):
            return None
        marker = read_json(path, "the run marker")
        if not isinstance(marker, dict) or marker.get("format_version") not in (
            FORMAT_VERSION,
        ):
            raise UsageError(
                f"{path} is not a run marker of format {FORMAT_VERSION}; this "
                "folder was not written by this version of keras_imsvd",
                field="output_dir",
            )
        return marker

    def check(self, config):
        """Refuses settings that would write into a folder holding other files.

        Returns "new", "resume" or "overwrite": what `open` will do.
        """
        path = self.path
        if os.path.lexists(path) and not os.path.isdir(path):
            raise UsageError(
                f"output_dir {path} exists and is not a folder", field="output_dir"
            )
        _check_writable(path)
        marker = self.marker() if os.path.isdir(path) else None
        if marker is None:
            if os.path.isdir(path) and os.listdir(path):
                raise UsageError(
                    f"output_dir {path} holds files but no keras_imsvd run (no "
                    f"{MARKER}); nothing in it is written or deleted. Choose an "
                    "empty or new folder",
                    field="output_dir",
                )
            return "new"
        if config.overwrite:
            return "overwrite"
        if not config.resume:
            raise UsageError(
                f"output_dir {path} already holds a run; pass --resume to continue "
                "it, --overwrite to replace it, or choose another folder",
                field="output_dir",
            )
        existing = read_json(self.join("config.json"), "the run's settings")
        wanted = config.training_settings()
        if not isinstance(existing, dict) or existing != wanted:
            existing = existing if isinstance(existing, dict) else {}
            changed = sorted(k for k in wanted if existing.get(k) != wanted[k])
            raise UsageError(
                f"output_dir {path} holds a run with different settings "
                f"({', '.join(changed)}); resume it with the same settings",
                field="output_dir",
            )
        return "resume"

    # Writing.

    def open(self, config, mode):
        """Creates the folder or takes over an existing run; writes the marker."""
        if not self.chief:
            return
        if mode == "overwrite":
            self.remove_run_files()
        os.makedirs(self.path, exist_ok=True)
        self.remove_temporary_files()
        if mode == "resume":
            self._files = list(self.marker().get("files", []))
        else:
            self._files = []
        self._record(MARKER)
        self.write_json("config.json", config.training_settings())

    def _record(self, name):
        if name not in self._files:
            self._files.append(name)
            self._write_marker()

    def _write_marker(self):
        from keras_imsvd.version import __version__

        marker = {
            "format_version": FORMAT_VERSION,
            "library": "keras_imsvd",
            "library_version": __version__,
            "files": self._files,
        }
        write_json(self.join(MARKER), marker)

    def forget(self, name):
        if name in self._files:
            self._files.remove(name)
            self._write_marker()

    def record_new_files(self, folder):
        """Adds the files under `folder` (relative) to the marker's list.

        For files that another writer made in a folder of ours, such as the
        TensorBoard event files under `logs/`.
        """
        if not self.chief:
            return
        prefix = folder.rstrip("/") + "/"
        for name in self._walk():
            if name.startswith(prefix):
                self._record(name)

    @contextlib.contextmanager
    def writing_new_files(self):
        """Records the files that appear in the folder while the block runs.

        For writers that choose their own file names (the explain report).
        """
        before = set(self._walk())
        try:
            yield
        finally:
            for name in sorted(set(self._walk()) - before):
                self._record(name)

    def _walk(self):
        for parent, _, names in os.walk(self.path):
            for name in names:
                relative = os.path.relpath(os.path.join(parent, name), self.path)
                yield relative.replace(os.sep, "/")

    @contextlib.contextmanager
    def writing(self, name):
        """Yields a temporary path for `name` (relative); renamed into place."""
        path = self.join(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._record(name)
        with atomic_path(path) as temporary:
            yield temporary

    def write_text(self, name, text):
        if self.chief:
            self._record(name)
            write_text(self.join(name), text)

    def write_json(self, name, value):
        self.write_text(name, json.dumps(value, indent=2) + "\n")

    def save_model(self, name, model):
        if self.chief:
            with self.writing(name) as temporary:
                model.save(temporary)
        elif self.collective_saves:
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                model.save(os.path.join(folder, os.path.basename(name)))

    def save_figure(self, name, figure, **kwargs):
        if self.chief:
            with self.writing(name) as temporary:
                figure.savefig(temporary, **kwargs)

    def write_history(self, rows):
        """history.csv: one row per finished epoch, blank where not measured."""
        columns = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        self.write_text("history.csv", buffer.getvalue())

    # Removal: only what the marker lists.

    def remove_run_files(self):
        """Deletes the files of the run in this folder, one by one.

        Files the marker does not list are kept, and so is every folder that
        still holds something after that.
        """
        marker = self.marker()
        names = [n for n in marker.get("files", []) if n != MARKER] + [MARKER]
        folders = set()
        root = os.path.abspath(self.path)
        for name in names:
            path = os.path.abspath(self.join(name))
            if os.path.commonpath([path, root]) != root:
                continue  # never outside the run folder
            if os.path.isfile(path) or os.path.islink(path):
                os.remove(path)
            parent = os.path.dirname(name)
            while parent:
                folders.add(parent)
                parent = os.path.dirname(parent)
        for folder in sorted(folders, key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(self.join(folder))  # only when empty
        self._files = []

    def remove_temporary_files(self):
        """Deletes what a killed write of ours left: `.<name>.tmp-<pid>` files."""
        for folder in (self.path, self.join(CHECKPOINTS)):
            if not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                if _TEMP.match(name) and os.path.isfile(os.path.join(folder, name)):
                    os.remove(os.path.join(folder, name))

    # Checkpoints.

    def save_state(self, model, epoch, history, keep=3):
        """Saves the state after `epoch` finished epochs; keeps the last `keep`."""
        stem = f"{CHECKPOINTS}/epoch_{epoch:04d}"
        self.save_model(stem + ".keras", model)
        if not self.chief:
            return
        # The JSON goes last: it vouches for the model file beside it.
        self.write_json(
            stem + ".json",
            {
                "format_version": FORMAT_VERSION,
                "epoch": epoch,
                "model": os.path.basename(stem) + ".keras",
                "history": history,
            },
        )
        for old in self.states()[:-keep]:
            for name in (old + ".json", old + ".keras"):
                path = self.join(name)
                if os.path.exists(path):
                    os.remove(path)
                self.forget(name)

    def states(self):
        """The checkpoint stems (`checkpoints/epoch_NNNN`), oldest first."""
        folder = self.join(CHECKPOINTS)
        if not os.path.isdir(folder):
            return []
        epochs = sorted(
            int(m.group(1)) for m in map(_STATE.match, os.listdir(folder)) if m
        )
        return [f"{CHECKPOINTS}/epoch_{epoch:04d}" for epoch in epochs]

    def restore_latest_state(self, model, log):
        """Loads the newest consistent state into `model`.

        Returns `(epoch, history)`, or `(0, [])` where no state is whole. Each
        state that is skipped is named in the log with the reason.
        """
        for stem in reversed(self.states()):
            try:
                state = self._load_state(model, stem)
            except Exception as error:  # noqa: BLE001 - any damage skips the state
                reason = str(error).splitlines()[0] if str(error) else repr(error)
                log(f"skipping damaged checkpoint {stem}: {reason[:200]}")
                continue
            log(f"resuming from {stem}.keras (epoch {state['epoch']} finished)")
            return state["epoch"], state["history"]
        log("no finished epoch to resume from; starting at epoch 1")
        return 0, []

    def _load_state(self, model, stem):
        with open(self.join(stem + ".json")) as f:
            state = json.load(f)
        epoch = state["epoch"]
        history = state["history"]
        if not (
            isinstance(epoch, int)
            and isinstance(history, list)
            and len(history) == epoch
            and f"epoch_{epoch:04d}" == os.path.basename(stem)
        ):
            raise ValueError("its record does not match its epoch")
        model.load_weights(self.join(stem + ".keras"))
        return state


def _check_writable(path):
    """`UsageError` where the folder, or the nearest existing parent, is read-only."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(
            f"output_dir {path} cannot be written ({probe} is read-only)",
            field="output_dir",
        )
