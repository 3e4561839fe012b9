"""Collectives on a single replica, in process, on every backend.

The many-replica behaviour is tested in fresh processes by test_data_parallel.py.
"""

import keras
import numpy as np
import pytest

import keras_imsvd
from keras_imsvd import distribute
from tests.distribute._scenarios import _codes


def test_single_replica_collectives_are_the_identity():
    p1, p2 = (keras.ops.convert_to_tensor(p) for p in _codes())
    assert distribute.num_replicas() == 1
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(distribute.all_gather(p1)), _codes()[0]
    )
    total, terms = distribute.global_joint_cross_entropy(p1, p2)
    expected, expected_terms = keras_imsvd.joint_cross_entropy(p1, p2)
    assert float(total) == float(expected)
    assert {k: float(v) for k, v in terms.items()} == {
        k: float(v) for k, v in expected_terms.items()
    }
    loss = keras.ops.convert_to_tensor(2.5)
    assert float(distribute.scale_loss_for_replicas(loss)) == 2.5


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="keras.distribution runs on JAX"
)
def test_jax_layouts_keep_the_loss_under_a_distribution():
    import jax

    p1, p2 = _codes()
    expected = float(keras_imsvd.joint_cross_entropy(p1, p2)[0])

    def loss(a, b):
        return distribute.global_joint_cross_entropy(a, b)[0]

    with distribute.data_parallel():
        value = float(jax.jit(loss)(p1, p2))
    assert keras.distribution.distribution() is None
    assert abs(value - expected) < 1e-6
