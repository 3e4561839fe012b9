"""The package as a whole: the Keras it supports, its internals, its import."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from packaging.version import Version

from keras_imsvd._keras_compat import SUPPORTED_KERAS_VERSIONS

PACKAGE = Path(__file__).resolve().parents[1] / "keras_imsvd"
REPO_ROOT = PACKAGE.parent


def test_installed_keras_is_in_the_supported_range():
    lowest, below = (Version(v) for v in SUPPORTED_KERAS_VERSIONS)
    assert lowest <= Version(keras.__version__) < below, (
        f"keras {keras.__version__} is outside the tested range "
        f"[{lowest}, {below}) of keras_imsvd._keras_compat"
    )


def test_pyproject_asks_for_the_supported_range():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    lowest, below = SUPPORTED_KERAS_VERSIONS
    assert f'"keras>={lowest},<{below}"' in pyproject


def test_keras_internals_stay_in_the_compat_module():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_keras_compat.py" and path.parent == PACKAGE:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\bkeras\.src\b|from keras import src\b", line):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}")
    assert not offenders, f"keras.src used outside _keras_compat.py: {offenders}"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_does_not_load_tensorflow(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    code = (
        "import sys\n"
        "import keras_imsvd\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')\n"
        "print(len(loaded), loaded[:5])\n"
    )
    environment = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("0 "), (
        f"import keras_imsvd loaded TensorFlow under {backend}: {result.stdout}"
    )
