"""The multi-device scenarios, run once per session and shared by the tests.

Each backend's scenario (`_scenarios.py`) runs in fresh processes with
simulated devices: JAX with 4 host devices, TensorFlow with 4 logical CPU
devices, PyTorch with 2 gloo processes.
"""

import pytest

from tests.distribute import _processes


@pytest.fixture(scope="session")
def jax_result():
    return _processes.jax_scenario()


@pytest.fixture(scope="session")
def tensorflow_result():
    return _processes.result(*_processes.finish([_processes.start("tensorflow")])[0])


@pytest.fixture(scope="session")
def torch_outputs():
    # After the equivalence checks, process 1 fails on purpose in a last `fit`.
    return _processes.finish(_processes.torch_processes(SCENARIO_FAIL_RANK="1"))


@pytest.fixture(scope="session")
def torch_results(torch_outputs):
    results = [
        _processes.result(0, stdout, stderr) for _, stdout, stderr in torch_outputs
    ]
    return sorted(results, key=lambda result: result["rank"])
