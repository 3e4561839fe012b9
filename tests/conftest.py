"""Shared fixtures. The backend is chosen by KERAS_BACKEND before keras loads."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir():
    """The `shared/` folder beside the repository (KERAS_IMSVD_SHARED overrides)."""
    return Path(os.environ.get("KERAS_IMSVD_SHARED", REPO_ROOT.parent / "shared"))


def run_train_py(args, timeout=600, **env):
    """Runs train.py with `args` in a process of its own, with `env` added to
    the environment; returns the `subprocess.CompletedProcess` (text)."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _reset_keras_state():
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
