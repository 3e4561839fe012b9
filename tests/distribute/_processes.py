"""Running the scenarios of `_scenarios.py` in fresh processes, for the tests.

A scenario runs only when `KERAS_BACKEND` names its backend, so running the
suite under the three backends covers each once.
"""

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import warnings

import keras
import pytest

from tests.conftest import REPO_ROOT

BACKEND = keras.backend.backend()
TIMEOUT = 300  # seconds for a scenario, imports included, on 2 slow cores

# XLA's CPU collectives over simulated devices sometimes deadlock on a small,
# busy machine: XLA then aborts the process after this many seconds
# ("Termination timeout for `all to all RendezvousKey` ... only 3 of them
# arrived"), and the scenario is run again. Real devices are not concerned.
XLA_CPU_RENDEZVOUS_TIMEOUT = 30
XLA_CPU_ATTEMPTS = 3


def only(backend):
    """Skips a test unless `KERAS_BACKEND` is `backend`."""
    return pytest.mark.skipif(
        BACKEND != backend,
        reason=f"the {backend} scenario runs when KERAS_BACKEND={backend}",
    )


def _environment(backend, **extra):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env.update(extra)
    return env


def start(scenario, **extra):
    """Starts `python -m tests.distribute._scenarios SCENARIO`."""
    backend = scenario.split("-")[0]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.distribute._scenarios", scenario],
        cwd=REPO_ROOT,
        env=_environment(backend, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(processes, timeout=TIMEOUT):
    """Waits for all processes; kills them all past `timeout`.

    The processes' pipes are read together: a process blocked on a full pipe
    would stall the collectives of the others.
    """
    with concurrent.futures.ThreadPoolExecutor(len(processes)) as pool:
        waiting = [pool.submit(p.communicate, timeout=timeout) for p in processes]
        try:
            outputs = [future.result() for future in waiting]
        except subprocess.TimeoutExpired:
            for process in processes:
                process.kill()
            pytest.fail(f"data-parallel scenario still running after {timeout} s")
    return [
        (process.returncode, stdout, stderr)
        for process, (stdout, stderr) in zip(processes, outputs)
    ]


def result(returncode, stdout, stderr):
    """The scenario's `RESULT` line (pass `returncode=0` to ignore the code)."""
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if returncode != 0 or not lines:
        pytest.fail(f"scenario failed (exit {returncode}):\n{stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torch_processes(world_size=2, **extra):
    """The processes of the PyTorch scenario, as torchrun would start them."""
    port = str(free_port())
    return [
        start(
            "torch",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world_size),
            **extra,
        )
        for rank in range(world_size)
    ]


def jax_scenario():
    """The JAX scenario on 4 simulated devices, run again if XLA deadlocks."""
    flags = os.environ.get("XLA_FLAGS", "")
    flags += (
        " --xla_force_host_platform_device_count=4"
        " --xla_cpu_collective_call_terminate_timeout_seconds="
        f"{XLA_CPU_RENDEZVOUS_TIMEOUT}"
    )
    for _ in range(XLA_CPU_ATTEMPTS):
        process = start("jax", XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu")
        returncode, stdout, stderr = finish([process])[0]
        if returncode == 0 or "Termination timeout for" not in stderr:
            break
        warnings.warn(
            "XLA CPU collectives deadlocked; running the scenario again", stacklevel=2
        )
    return result(returncode, stdout, stderr)
