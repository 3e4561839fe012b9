"""Mutual information read from the joint matrix: exact cases and invariants."""

import math

import numpy as np
import pytest

from keras_imsvd import explain


def _mutual_information_reference(joint):
    """Loop transcription of `sum_ij P_ij log(P_ij / (r_i c_j))`, float64."""
    joint = np.asarray(joint, dtype="float64")
    rows, columns = joint.sum(axis=1), joint.sum(axis=0)
    total = 0.0
    for i in range(joint.shape[0]):
        for j in range(joint.shape[1]):
            if joint[i, j] > 0:
                total += joint[i, j] * math.log(joint[i, j] / (rows[i] * columns[j]))
    return total


def test_hand_computed_two_by_two():
    block = np.array([[0.4, 0.1], [0.1, 0.4]])
    expected = 0.8 * math.log(0.4 / 0.25) + 0.2 * math.log(0.1 / 0.25)
    assert _mutual_information_reference(block) == pytest.approx(expected, abs=1e-15)
    result = explain.mutual_information_matrix(block, bin_size=2)
    np.testing.assert_allclose(result, [[expected]], rtol=0, atol=1e-12)


def test_identical_uniform_codes_give_log_b_independent_give_zero():
    bin_size = 5
    n = np.arange(bin_size * bin_size)
    # Variable 0 and 1 identical, every bin used equally often; variable 2
    # runs through its bins once per value of variable 0, so every pair of bins
    # (variable 0, variable 2) occurs exactly once: exactly independent.
    hard = np.stack([n % bin_size, n % bin_size, n // bin_size], axis=1)
    codes = np.eye(bin_size)[hard]  # (25, 3, 5) one-hot
    P = explain.joint_probability_matrix_from_codes(codes, codes)
    log_b = math.log(bin_size)
    expected = np.array([[log_b, log_b, 0.0], [log_b, log_b, 0.0], [0.0, 0.0, log_b]])
    np.testing.assert_allclose(
        explain.mutual_information_matrix(P, bin_size), expected, rtol=0, atol=1e-12
    )
    # The bin size is read from P when not given.
    np.testing.assert_allclose(
        explain.mutual_information_matrix(P), expected, rtol=0, atol=1e-12
    )


def test_independent_random_codes_give_near_zero():
    # Plug-in MI of independent variables is biased up by about
    # (b - 1)^2 / (2 N) nats for hard codes (2.5e-4 here); soft codes less.
    rng = np.random.default_rng(0)
    num_images, num_variables, bin_size = 100_000, 3, 8
    logits = 3.0 * rng.normal(size=(2, num_images, num_variables, bin_size))
    soft = np.exp(logits - logits.max(axis=-1, keepdims=True))
    soft /= soft.sum(axis=-1, keepdims=True)
    P = explain.joint_probability_matrix_from_codes(soft[0], soft[1])
    between_views = explain.mutual_information_matrix(P, bin_size)
    assert between_views.shape == (3, 3)
    assert np.all(between_views >= 0)
    assert between_views.max() < 2e-3
    hard = np.eye(bin_size)[rng.integers(0, bin_size, (num_images, num_variables))]
    within_view = explain.redundancy_matrix(hard)
    off_diagonal = within_view[~np.eye(num_variables, dtype=bool)]
    assert off_diagonal.max() < 2e-3
    np.testing.assert_allclose(
        np.diag(within_view), math.log(bin_size), rtol=0, atol=2e-3
    )


def test_blocks_match_loop_reference():
    rng = np.random.default_rng(3)
    p1 = rng.dirichlet(np.full(4, 0.3), size=(60, 3))
    p2 = 0.5 * p1 + 0.5 * rng.dirichlet(np.full(4, 0.3), size=(60, 3))
    P = explain.joint_probability_matrix_from_codes(p1, p2)
    result = explain.mutual_information_matrix(P, bin_size=4)
    for k in range(3):
        for m in range(3):
            block = P[4 * k : 4 * k + 4, 4 * m : 4 * m + 4]
            assert result[k, m] == pytest.approx(
                _mutual_information_reference(block), abs=1e-12
            )


def test_redundancy_is_mutual_information_of_a_view_with_itself():
    rng = np.random.default_rng(4)
    codes = rng.dirichlet(np.full(6, 0.2), size=(80, 4))  # (N, K, b)
    redundancy = explain.redundancy_matrix(codes)
    P = explain.joint_probability_matrix_from_codes(codes, codes)
    full = explain.mutual_information_matrix(P, bin_size=6)
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose(redundancy[off], full[off], rtol=0, atol=1e-12)
    marginals = codes.mean(axis=0)  # (K, b)
    entropies = -(marginals * np.log(marginals)).sum(axis=1)
    np.testing.assert_allclose(np.diag(redundancy), entropies, rtol=0, atol=1e-12)
    subset = explain.redundancy_matrix(codes, variables=[2, 0])
    np.testing.assert_allclose(subset, redundancy[np.ix_([2, 0], [2, 0])], atol=1e-12)


def test_redundancy_of_a_model(tiny_model, images):
    from_model = explain.redundancy_matrix(tiny_model, images)
    from_codes = explain.redundancy_matrix(tiny_model.discretize(images))
    np.testing.assert_allclose(from_model, from_codes, rtol=0, atol=1e-12)
    assert from_model.shape == (4, 4)
    assert np.all(from_model >= 0) and np.all(from_model <= math.log(8) + 1e-6)


def test_bin_size_that_cannot_be_read_raises():
    with pytest.raises(ValueError, match="bin_size"):
        explain.mutual_information_matrix(np.full((6, 6), 0.5))
    with pytest.raises(ValueError, match="bin_size"):
        explain.mutual_information_matrix(np.eye(6) / 6, bin_size=4)


def test_normalized_redundancy():
    redundancy = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 0.0]])
    expected = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(explain.normalize_redundancy(redundancy), expected)
    # Identical variables repeat all of each other's information.
    n = np.arange(12)
    codes = np.eye(4)[np.stack([n % 4, n % 4, n % 2], axis=1)]  # (12, 3, 4)
    normalized = explain.normalize_redundancy(explain.redundancy_matrix(codes))
    np.testing.assert_allclose(normalized[0, 1], 1.0, atol=1e-12)
    # Variable 2 (2 bins) is a function of variable 0: all of its information.
    np.testing.assert_allclose(normalized[0, 2], 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="square"):
        explain.normalize_redundancy(np.zeros((2, 3)))
