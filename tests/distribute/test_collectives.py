"""Collectives and the loss of the global batch, on one replica and on several.

The first tests run in process, on the one local device. The others read the
multi-device scenarios (`_scenarios.py`, run by `conftest.py`): JAX's row blocks
on 4 simulated devices, TensorFlow on 4 logical CPU devices, PyTorch in 2 gloo
processes; each compares the loss of codes made at non-default temperatures,
with weights that differ from each other, with the float64 transcription
`tests/reference.py`.
"""

import importlib
import itertools

import keras
import numpy as np
import pytest

import keras_imsvd
from keras_imsvd import distribute
from tests import reference
from tests.distribute._processes import only
from tests.distribute._scenarios import WEIGHTED_CASES
from tests.distribute._scenarios import _codes
from tests.distribute._scenarios import _weighted_codes

# Relative errors against float64: float32 arithmetic over at most a few
# hundred terms stays near 1e-7.
TOLERANCE = 1e-5
WEIGHTS = {"invariance_weight": 0.7, "diagonal_weight": 1.9, "off_diagonal_weight": 0.4}


def test_single_replica_collectives_are_the_identity():
    p1, p2 = (keras.ops.convert_to_tensor(p) for p in _codes())
    assert distribute.num_replicas() == 1
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(distribute.all_gather(p1)), _codes()[0]
    )
    total, terms = distribute.global_joint_cross_entropy(p1, p2, **WEIGHTS)
    expected, expected_terms = keras_imsvd.joint_cross_entropy(p1, p2, **WEIGHTS)
    assert float(total) == float(expected)
    assert {k: float(v) for k, v in terms.items()} == {
        k: float(v) for k, v in expected_terms.items()
    }
    np.testing.assert_allclose(
        float(total), reference.loss(*_codes(), tuple(WEIGHTS.values())), rtol=1e-6
    )
    for name, value in reference.loss_terms(*_codes()).items():
        np.testing.assert_allclose(float(terms[name]), value, rtol=1e-6)
    loss = keras.ops.convert_to_tensor(2.5)
    assert float(distribute.scale_loss_for_replicas(loss)) == 2.5


def test_global_loss_calls_the_term_functions_of_losses(monkeypatch):
    module = importlib.import_module("keras_imsvd.losses.joint_cross_entropy")
    calls = []
    for name in ("invariance_term", "diagonal_term", "off_diagonal_term"):
        term = getattr(module, name)

        def recorded(p1, p2, collectives=None, term=term, name=name):
            calls.append((name, tuple(p1.shape)))
            return keras.ops.convert_to_tensor(1.0) + 0.0 * term(p1, p2, collectives)

        monkeypatch.setattr(module, name, recorded)
    total, _ = distribute.global_joint_cross_entropy(*_codes(), **WEIGHTS)
    assert sorted(calls) == sorted(
        (name, (16, 4, 8))
        for name in ("invariance_term", "diagonal_term", "off_diagonal_term")
    )
    # The total is the weighted sum of what the term functions return.
    np.testing.assert_allclose(float(total), sum(WEIGHTS.values()), rtol=1e-6)


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="keras.distribution runs on JAX"
)
def test_jax_layouts_keep_the_loss_under_a_distribution():
    import jax

    p1, p2 = _codes()
    expected = reference.loss(p1, p2)

    def loss(a, b):
        return distribute.global_joint_cross_entropy(a, b)[0]

    with distribute.data_parallel():
        value = float(jax.jit(loss)(p1, p2))
    assert keras.distribution.distribution() is None
    assert abs(value - expected) < 1e-6


# -- many devices, in fresh processes -------------------------------------------


def _check_errors(errors):
    for key in ("value_error", "terms_error", "grad_error"):
        assert errors[key] < TOLERANCE, (key, errors)


@only("jax")
@pytest.mark.parametrize("case", sorted(WEIGHTED_CASES))
def test_jax_row_blocks_match_float64_reference(jax_result, case):
    _check_errors(jax_result["weighted"][case])


@only("jax")
@pytest.mark.parametrize("case", sorted(WEIGHTED_CASES))
def test_jax_row_blocks_run_the_term_functions_on_each_device(jax_result, case):
    batch, num_variables, bin_size = WEIGHTED_CASES[case][:3]
    local = [batch // 4, num_variables, bin_size]
    # Each term function of keras_imsvd.losses, traced once inside shard_map on
    # a device's rows, with the collectives that distribute supplies.
    assert sorted(jax_result["term_calls"][case]) == [
        [name, local, "replicas"]
        for name in ("diagonal_term", "invariance_term", "off_diagonal_term")
    ]


@only("tensorflow")
def test_tensorflow_collectives_on_four_replicas(tensorflow_result):
    assert tensorflow_result["all_gather_max_diff"] == 0.0
    assert tensorflow_result["num_replicas_seen"] == [4] * 4
    # TensorFlow's optimizer sums the replicas' gradients.
    assert tensorflow_result["scaled_loss"] == [0.5] * 4


@only("tensorflow")
@pytest.mark.parametrize("case", sorted(WEIGHTED_CASES))
def test_tensorflow_loss_matches_float64_reference(tensorflow_result, case):
    replicas = tensorflow_result["weighted"][case]
    assert len(replicas) == 4
    for errors in replicas:
        _check_errors(errors)


@only("torch")
def test_torch_collectives_in_two_processes(torch_results):
    for result in torch_results:
        assert result["all_gather_max_diff"] == 0.0
        assert result["num_replicas_seen"] == 2
        # SynchronizeReplicas averages the gradients; the loss stays whole.
        assert result["scaled_loss"] == 2.0


@only("torch")
@pytest.mark.parametrize("case", sorted(WEIGHTED_CASES))
def test_torch_loss_matches_float64_reference(torch_results, case):
    for result in torch_results:
        _check_errors(result["weighted"][case])


@pytest.mark.parametrize("case", sorted(WEIGHTED_CASES))
def test_weighted_cases_tell_the_weights_apart(case):
    # Two weights swapped, or one left at 1, move the loss of every case far
    # beyond TOLERANCE, so the checks of the scenarios above would see it.
    _, codes = _weighted_codes(case)
    weights = WEIGHTED_CASES[case][4]
    assert WEIGHTED_CASES[case][3] != 1.0
    expected = reference.loss(*codes, weights)
    variants = []
    for i, j in itertools.combinations(range(3), 2):
        swapped = list(weights)
        swapped[i], swapped[j] = weights[j], weights[i]
        variants.append(swapped)
    for i in range(3):
        variants.append([1.0 if k == i else w for k, w in enumerate(weights)])
    for variant in variants:
        moved = abs(reference.loss(*codes, variant) - expected)
        assert moved > 100 * TOLERANCE * max(1.0, abs(expected)), variant
