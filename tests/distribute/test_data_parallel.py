"""Data-parallel IMSVD equals one device on the global batch, on every backend.

The first tests run in process, on the one local device. Each backend's
multi-device scenario (`_scenarios.py`) runs in fresh processes with simulated
devices (`conftest.py`): JAX with 4 host devices (and as 2 processes, as on 2
hosts), TensorFlow with 4 logical CPU devices, PyTorch with 2 gloo processes. A
scenario runs only when `KERAS_BACKEND` names its backend, so running the suite
under the three backends covers each once.
"""

import keras
import numpy as np
import pytest

from keras_imsvd import distribute
from tests.distribute import _processes
from tests.distribute._processes import BACKEND
from tests.distribute._processes import only
from tests.distribute._scenarios import GLOBAL_BATCH
from tests.distribute._scenarios import _fit
from tests.distribute._scenarios import _global_dataset
from tests.distribute._scenarios import _model

LOSS_TOLERANCE = 1e-5
FIT_TOLERANCE = 1e-4
MISSING_SCALE = (
    "IMSVDModel.compute_loss must return "
    "keras_imsvd.distribute.scale_loss_for_replicas(total) (TensorFlow sums the "
    "replicas' gradients)"
)


# -- one process, one device ------------------------------------------------------


def test_single_device_scope_trains_as_without_it():
    weights, loss = _fit(_model(), _global_dataset())
    with distribute.data_parallel() as replicas:
        assert replicas.backend == BACKEND
        assert replicas.num_processes == 1 and replicas.is_chief
        dataset = replicas.distribute_dataset(_global_dataset())
        model = _model()
        scoped_weights, scoped_loss = _fit(
            model, dataset, callbacks=[distribute.SynchronizeReplicas()]
        )
    if BACKEND == "jax":
        assert keras.distribution.distribution() is None
    # One device here (or all local accelerators: the result is the same).
    assert abs(scoped_loss - loss) < LOSS_TOLERANCE
    for expected, actual in zip(weights, scoped_weights):
        np.testing.assert_allclose(actual, expected, atol=LOSS_TOLERANCE)


def _as_torch_process(scope, process_index, num_processes):
    """A scope that slices data as PyTorch process `process_index` would."""
    scope.backend = "torch"
    scope.num_replicas = scope.num_processes = num_processes
    scope.process_index = process_index
    return scope


def test_distribute_dataset_gives_each_torch_process_its_rows():
    import tensorflow as tf

    rows = np.arange(48, dtype="float32").reshape(24, 2)
    dataset = tf.data.Dataset.from_tensor_slices(
        {"view_1": rows, "view_2": -rows}
    ).batch(8, drop_remainder=True)
    for index in range(4):
        scope = _as_torch_process(distribute.data_parallel(), index, 4)
        assert scope.local_batch_size(8) == 2
        shard = scope.distribute_dataset(dataset)
        assert int(shard.cardinality()) == 3
        batches = list(shard.as_numpy_iterator())
        for step, batch in enumerate(batches):
            start = 8 * step + 2 * index
            np.testing.assert_array_equal(batch["view_1"], rows[start : start + 2])
            np.testing.assert_array_equal(batch["view_2"], -rows[start : start + 2])


def test_distribute_dataset_needs_a_static_global_batch():
    import tensorflow as tf

    scope = _as_torch_process(distribute.data_parallel(), 0, 2)
    dataset = tf.data.Dataset.from_tensor_slices(np.zeros((10, 2), "float32"))
    with pytest.raises(ValueError, match="drop_remainder=True"):
        scope.distribute_dataset(dataset.batch(4))
    with pytest.raises(ValueError, match="multiple of the number of replicas"):
        scope.distribute_dataset(dataset.batch(3, drop_remainder=True))
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        scope.distribute_dataset(np.zeros((4, 2)))


def test_local_batch_size():
    scope = distribute.data_parallel()
    assert scope.local_batch_size(GLOBAL_BATCH) == GLOBAL_BATCH
    _as_torch_process(scope, 1, 4)
    assert scope.local_batch_size(GLOBAL_BATCH) == GLOBAL_BATCH // 4
    with pytest.raises(ValueError, match="global_batch_size=10, num_replicas=4"):
        scope.local_batch_size(10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="timeout"):
        distribute.data_parallel(timeout=0)
    if BACKEND == "torch":
        with pytest.raises(ValueError, match="torchrun"):
            distribute.data_parallel(devices=["cpu:0"])


# -- many devices, in fresh processes -------------------------------------------


def _check_fit(fit):
    # The three steps must move the weights, or the comparison proves nothing.
    assert fit["fit_weights_moved"] > 1e-2
    assert fit["fit_weights_max_diff"] < FIT_TOLERANCE, MISSING_SCALE
    reference_loss, loss = fit["fit_loss"]
    assert abs(reference_loss - loss) < LOSS_TOLERANCE * max(1.0, abs(loss))


# -- JAX ----------------------------------------------------------------------


@only("jax")
def test_jax_runs_on_four_devices(jax_result):
    assert jax_result["devices"] == 4
    assert jax_result["num_replicas"] == 4
    assert jax_result["input_shards"] == [[4, 4, 8]] * 4
    # Inside `fit`, each device holds 4 of the 16 images of a step.
    assert jax_result["step_input_shards"]
    for shard_shape, devices in jax_result["step_input_shards"]:
        assert shard_shape == [4, 4, 4, 1]
        assert devices == 4


@only("jax")
@pytest.mark.parametrize("plan", ["none", "all_gather", "row_blocks"])
def test_jax_loss_and_gradients_match_single_device(jax_result, plan):
    assert jax_result[f"{plan}_value_diff"] < LOSS_TOLERANCE
    assert jax_result[f"{plan}_terms_max_diff"] < LOSS_TOLERANCE
    assert jax_result[f"{plan}_grad_max_diff"] < LOSS_TOLERANCE


@only("jax")
def test_jax_gathers_codes_instead_of_reducing_the_joint_matrix(jax_result):
    joint = f"{jax_result['dim']},{jax_result['dim']}"
    collectives = jax_result["collectives"]

    def reduced(plan):
        return [shapes for op, shapes in collectives[plan] if op == "all-reduce"]

    # Left to itself, XLA all-reduces the (D, D) joint matrix.
    assert any(joint in shapes for shapes in reduced("none"))
    # Replicated codes: two all-gathers of (N, K, b), nothing reduced.
    assert [op for op, _ in collectives["all_gather"]] == ["all-gather"] * 2
    # Row blocks: no collective carries a (D, D) matrix; the backward pass
    # reduce-scatters the gathered codes.
    ops = {op for op, _ in collectives["row_blocks"]}
    assert {"all-gather", "all-to-all", "reduce-scatter"} <= ops
    for _, shapes in collectives["row_blocks"]:
        assert joint not in shapes


@only("jax")
def test_jax_fit_matches_single_device(jax_result):
    _check_fit(jax_result["fit"])


@only("jax")
def test_jax_two_processes_match_single_device():
    # Two processes of one CPU device each, as two hosts would run.
    address = f"127.0.0.1:{_processes.free_port()}"
    processes = [
        _processes.start(
            "jax-processes",
            JAX_PLATFORMS="cpu",
            KERAS_DISTRIBUTION_JOB_ADDRESSES=address,
            KERAS_DISTRIBUTION_NUM_PROCESSES="2",
            KERAS_DISTRIBUTION_PROCESS_ID=str(index),
        )
        for index in range(2)
    ]
    outputs = _processes.finish(processes)
    results = [_processes.result(*output) for output in outputs]
    for index, result in enumerate(results):
        assert result["process_index"] == index
        assert result["num_processes"] == result["num_replicas"] == 2
        _check_fit(result["fit"])


# -- TensorFlow ---------------------------------------------------------------


@only("tensorflow")
def test_tensorflow_runs_on_four_devices(tensorflow_result):
    assert tensorflow_result["num_replicas"] == 4
    seen = tensorflow_result["compute_loss_replicas"]
    devices = sorted({device.rsplit("/", 1)[-1] for _, device, _ in seen})
    assert devices == [f"device:CPU:{i}" for i in range(4)]
    for shape, _, replicas in seen:
        assert shape == [4, 4, 8]  # 4 of the 16 samples, K = 4, b = 8
        assert replicas == 4


@only("tensorflow")
def test_tensorflow_loss_and_gradients_match_single_device(tensorflow_result):
    assert tensorflow_result["value_diff"] < LOSS_TOLERANCE
    assert tensorflow_result["grad_max_diff"] < LOSS_TOLERANCE


@only("tensorflow")
def test_tensorflow_fit_matches_single_device(tensorflow_result):
    _check_fit(tensorflow_result["fit"])


# -- PyTorch ------------------------------------------------------------------


@only("torch")
def test_torch_runs_two_processes(torch_results):
    assert [result["rank"] for result in torch_results] == [0, 1]
    for result in torch_results:
        assert result["num_replicas"] == 2
        assert result["compute_loss_batches"] == [[8, 4, 8]] * 3


@only("torch")
def test_torch_loss_and_gradients_match_single_device(torch_results):
    for result in torch_results:
        assert result["value_diff"] < LOSS_TOLERANCE
        assert result["grad_max_diff"] < LOSS_TOLERANCE


@only("torch")
def test_torch_fit_matches_single_device(torch_results):
    for result in torch_results:
        _check_fit(result["fit"])
    first, second = (np.asarray(r["fit"]["fit_loss"]) for r in torch_results)
    np.testing.assert_array_equal(first, second)


@only("torch")
def test_torch_failure_in_one_process_stops_the_others(torch_outputs):
    # `finish` fails the test if the processes hang.
    (code_0, _, stderr_0), (code_1, _, stderr_1) = torch_outputs
    assert code_1 != 0
    assert "this process fails on purpose" in stderr_1
    # Process 0 was waiting for process 1 in a collective: it fails, saying why.
    assert code_0 != 0, stderr_0[-2000:]
    assert "another process has probably stopped" in stderr_0
