"""Where the local cache and, in a checkout, the shared data sets live."""

import os
from pathlib import Path

SHARED_ENV = "KERAS_IMSVD_SHARED"
CACHE_ENV = "KERAS_IMSVD_CACHE"


def _find_shared_dir() -> Path | None:
    """The shared data folder of a checkout (`../shared` from its root), or `None`.

    Looks at `$KERAS_IMSVD_SHARED` first, then `shared/` beside the folder that
    holds the `keras_imsvd` package, then `../shared` from the working directory.
    """
    if os.environ.get(SHARED_ENV):
        path = Path(os.environ[SHARED_ENV]).expanduser()
        return path if path.is_dir() else None
    repository = Path(__file__).resolve().parents[2]
    for candidate in (repository.parent / "shared", Path.cwd().parent / "shared"):
        if candidate.is_dir():
            return candidate
    return None


def default_cache_dir() -> Path:
    """The folder for extracted archives and decoded arrays.

    Returns:
        `$KERAS_IMSVD_CACHE` if set, else `~/.cache/keras_imsvd` (not created).

    Example:

    >>> import keras_imsvd
    >>> cache = keras_imsvd.data.default_cache_dir()
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "keras_imsvd"
