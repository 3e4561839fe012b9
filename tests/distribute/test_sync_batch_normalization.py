"""`SyncBatchNormalization` across replicas equals one device on the global batch.

Each backend's scenario (`_scenarios.py`, run once per session by
`conftest.py`) trains a small IMSVDModel with `SyncBatchNormalization` in its
encoder and its projector for one SGD step on a global batch of 16, split over
4 TensorFlow replicas (logical CPUs), 2 PyTorch processes (gloo) or 4 JAX
devices, and compares it with one device:

- `global`: BatchNorm over the whole batch, which synchronised BatchNorm must
  equal (moving mean and variance, the loss, every weight after the step);
- `per_replica`: BatchNorm over each replica's slice, the moving statistics
  averaged over the slices, which `synchronized=False` must equal on
  TensorFlow and PyTorch. On JAX every layer sees the global batch, so both
  settings equal `global`.

The two references are checked to lie far apart first, so that every
comparison can fail.
"""

from tests.distribute._processes import only

TOLERANCE = 1e-5  # one step in float32 (the measured differences are below 1e-6)
APART = 1e-3  # how far per-replica statistics take one step, at least
KINDS = ("moving_mean", "moving_variance", "weights", "loss")


def _check_references(report):
    # The step moves the statistics and the weights...
    moved = report["moved"]
    assert moved["moving_mean"] > 1e-2 and moved["moving_variance"] > 1e-2
    assert moved["weights"] > 1e-2
    # ... and BatchNorm per replica gives another step.
    apart = report["references_apart"]
    for kind in KINDS:
        assert apart[kind] > APART, (kind, apart)


def _check_equal(differences, run):
    for kind in KINDS:
        assert differences[kind] < TOLERANCE, (run, kind, differences)


def _check_apart(differences, run):
    assert max(differences[kind] for kind in KINDS) > APART, (run, differences)


@only("jax")
def test_jax_batch_norm_sees_the_global_batch(jax_result):
    report = jax_result["sync_batch_norm"]
    _check_references(report)
    for run in ("synchronized", "per_replica"):
        _check_equal(report[run]["global"], run)
        _check_apart(report[run]["per_replica"], run)


def _check_synchronized_and_per_replica(report):
    _check_references(report)
    _check_equal(report["synchronized"]["global"], "synchronized")
    _check_apart(report["synchronized"]["per_replica"], "synchronized")
    # synchronized=False: each replica's own statistics, as before.
    per_replica = report["per_replica"]
    _check_apart(per_replica["global"], "per_replica")
    for kind in ("weights", "loss"):
        assert per_replica["per_replica"][kind] < TOLERANCE, (kind, per_replica)


@only("tensorflow")
def test_tensorflow_synchronized_batch_norm_equals_global_batch(tensorflow_result):
    _check_synchronized_and_per_replica(tensorflow_result["sync_batch_norm"])


@only("torch")
def test_torch_synchronized_batch_norm_equals_global_batch(torch_results):
    for result in torch_results:
        report = result["sync_batch_norm"]
        _check_synchronized_and_per_replica(report)
        # SynchronizeReplicas averages the per-process moving statistics.
        for kind in ("moving_mean", "moving_variance"):
            assert report["per_replica"]["per_replica"][kind] < TOLERANCE
    first, second = (result["sync_batch_norm"] for result in torch_results)
    assert first["synchronized"] == second["synchronized"]
