"""`SynchronizeReplicas`: its config in process, and a BatchNorm `fit` in 2 processes.

The PyTorch scenario (`_scenarios.py`, run by `conftest.py`) trains an
IMSVDModel with a BatchNormalization layer in 2 gloo processes, each building
its model from its own seed and feeding its half of every global batch. The
reference is one device on the concatenated batches, starting from rank 0's
weights, whose BatchNormalization normalises each half with its own statistics
(as each process does) and moves the statistics by the average of the halves'
updates (as the callback's averaging does).
"""

from keras_imsvd import distribute
from tests.distribute._processes import only

TOLERANCE = 1e-4  # as for the other fits: 3 SGD steps in float32
MOVING = ("moving_mean", "moving_variance")


def test_config_round_trip():
    callback = distribute.SynchronizeReplicas(average_moving_statistics=False)
    config = callback.get_config()
    assert config == {"average_moving_statistics": False}
    assert distribute.SynchronizeReplicas(**config).average_moving_statistics is False


@only("torch")
def test_torch_batch_norm_fit_from_different_seeds(torch_results):
    first, second = (result["batch_norm_fit"] for result in torch_results)
    names = first["names"]
    assert set(MOVING) <= set(names)
    moving = [name in MOVING for name in names]
    # Preconditions: the seeds differ, and training moves the weights and the
    # moving statistics, so each check below can fail.
    assert max(first["start_vs_initial"]) == 0.0
    assert max(second["start_vs_initial"]) > 0.1
    assert max(d for d, m in zip(first["moved"], moving) if not m) > 1e-2
    assert min(d for d, m in zip(first["moved"], moving) if m) > 1e-1
    # Each process holds the model of one device on the global batches, from
    # rank 0's weights, moving statistics included...
    for rank, fit in enumerate((first, second)):
        for name, difference in zip(names, fit["vs_reference"]):
            assert difference < TOLERANCE, f"rank {rank}, {name}: {difference}"
    # ... and both hold exactly the same.
    assert first["digest"] == second["digest"]
