"""The streamed joint matrix against a float64 NumPy reference on the whole set."""

import numpy as np
import pytest
import tensorflow as tf

from keras_imsvd import explain

# Codes come from float32 inference; batches of different sizes may round
# differently, so the comparison with a whole-set pass allows float32 noise.
ATOL_MODEL = 1e-6
ATOL_EXACT = 1e-12


def _softmax_codes(rng, shape):
    logits = 2.0 * rng.normal(size=shape)
    codes = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return codes / codes.sum(axis=-1, keepdims=True)


def _reference(p1, p2, variables=None):
    """`P = (1/N) sum_n vec(p1[n]) vec(p2[n])^T` in float64, in one einsum."""
    p1 = np.asarray(p1, dtype="float64")
    p2 = np.asarray(p2, dtype="float64")
    if variables is not None:
        p1, p2 = p1[:, variables], p2[:, variables]
    n = len(p1)
    return np.einsum("ni,nj->ij", p1.reshape(n, -1), p2.reshape(n, -1)) / n


@pytest.fixture(scope="module")
def two_views(images):
    rng = np.random.default_rng(1)
    second = np.clip(images + 0.1 * rng.normal(size=images.shape), 0, 1)
    return images[:23], second[:23].astype("float32")


def test_tf_dataset_with_uneven_last_batch_equals_whole_set(tiny_model, two_views):
    x1, x2 = two_views
    dataset = tf.data.Dataset.from_tensor_slices({"view_1": x1, "view_2": x2})
    P = explain.joint_probability_matrix(tiny_model, dataset.batch(5))  # 5,5,5,5,3
    expected = _reference(tiny_model.discretize(x1), tiny_model.discretize(x2))
    assert P.dtype == np.float64
    assert P.shape == (32, 32)
    np.testing.assert_allclose(P, expected, rtol=0, atol=ATOL_MODEL)


def test_generator_with_labels_and_variable_subset(tiny_model, two_views):
    x1, x2 = two_views
    sizes = [10, 4, 9]

    def batches():
        start = 0
        for size in sizes:
            stop = start + size
            yield {"view_1": x1[start:stop], "view_2": x2[start:stop]}, np.zeros(size)
            start = stop

    P = explain.joint_probability_matrix(tiny_model, batches(), variables=[3, 1])
    expected = _reference(
        tiny_model.discretize(x1), tiny_model.discretize(x2), variables=[3, 1]
    )
    assert P.shape == (16, 16)
    np.testing.assert_allclose(P, expected, rtol=0, atol=ATOL_MODEL)


def test_pair_of_image_arrays_and_steps(tiny_model, two_views):
    x1, x2 = two_views
    P = explain.joint_probability_matrix(tiny_model, (x1, x2), batch_size=6)
    expected = _reference(tiny_model.discretize(x1), tiny_model.discretize(x2))
    np.testing.assert_allclose(P, expected, rtol=0, atol=ATOL_MODEL)
    first_two = explain.joint_probability_matrix(
        tiny_model, (x1, x2), batch_size=6, steps=2
    )
    expected = _reference(
        tiny_model.discretize(x1[:12]), tiny_model.discretize(x2[:12])
    )
    np.testing.assert_allclose(first_two, expected, rtol=0, atol=ATOL_MODEL)


def test_soft_codes_streamed_is_a_sum_over_all_samples():
    rng = np.random.default_rng(0)
    p1 = _softmax_codes(rng, (37, 3, 5))
    p2 = _softmax_codes(rng, (37, 3, 5))
    expected = _reference(p1, p2)
    sizes = [(0, 30), (30, 36), (36, 37)]  # a last batch of one
    batches = [(p1[a:b], p2[a:b]) for a, b in sizes]
    streamed = explain.joint_probability_matrix(None, batches)
    np.testing.assert_allclose(streamed, expected, rtol=0, atol=ATOL_EXACT)
    # An average of per-batch means would weight the batch of one 30 times
    # too much: make sure the test can tell the two apart.
    mean_of_means = np.mean([_reference(a, b) for a, b in batches], axis=0)
    assert np.abs(mean_of_means - expected).max() > 1e-3
    whole = explain.joint_probability_matrix(None, (p1, p2), batch_size=8)
    np.testing.assert_allclose(whole, expected, rtol=0, atol=ATOL_EXACT)
    direct = explain.joint_probability_matrix_from_codes(p1, p2)
    np.testing.assert_allclose(direct, expected, rtol=0, atol=ATOL_EXACT)


def test_steps_stop_an_infinite_stream():
    rng = np.random.default_rng(0)
    p = _softmax_codes(rng, (4, 2, 3))
    read = []

    def forever():
        while True:
            read.append(1)
            yield p, p

    P = explain.joint_probability_matrix(None, forever(), steps=3)
    np.testing.assert_allclose(P, _reference(p, p), rtol=0, atol=ATOL_EXACT)
    assert len(read) == 3  # no batch read beyond `steps`


def test_accumulator_counts_samples():
    rng = np.random.default_rng(0)
    p = _softmax_codes(rng, (9, 2, 3))
    accumulator = explain.JointMatrixAccumulator(variables=[1])
    accumulator.update(p[:2], p[:2])
    accumulator.update(p[2:], p[2:])
    assert accumulator.count == 9
    np.testing.assert_allclose(
        accumulator.result(), _reference(p, p, [1]), rtol=0, atol=ATOL_EXACT
    )


def test_blocks_sum_to_one():
    rng = np.random.default_rng(0)
    p1 = _softmax_codes(rng, (50, 4, 6))
    p2 = _softmax_codes(rng, (50, 4, 6))
    P = explain.joint_probability_matrix_from_codes(p1, p2)
    block_sums = P.reshape(4, 6, 4, 6).sum(axis=(1, 3))  # (K, K)
    np.testing.assert_allclose(block_sums, np.ones((4, 4)), rtol=0, atol=1e-12)


def test_blocks_of_model_codes_sum_to_one(tiny_model, two_views):
    P = explain.joint_probability_matrix(tiny_model, two_views)
    block_sums = P.reshape(4, 8, 4, 8).sum(axis=(1, 3))
    # Codes are clamped at 1e-8 without renormalising, and float32.
    np.testing.assert_allclose(block_sums, np.ones((4, 4)), rtol=0, atol=1e-5)


def test_bad_inputs_raise():
    rng = np.random.default_rng(0)
    p = _softmax_codes(rng, (4, 2, 3))
    with pytest.raises(ValueError, match="same shape"):
        explain.joint_probability_matrix_from_codes(p, p[:, :1])
    with pytest.raises(ValueError, match="variables"):
        explain.joint_probability_matrix_from_codes(p, p, variables=[2])
    with pytest.raises(ValueError, match="num_variables"):
        explain.joint_probability_matrix_from_codes(p[0], p[0])
    with pytest.raises(ValueError, match="empty"):
        explain.joint_probability_matrix(None, [])
    with pytest.raises(ValueError, match="view_1"):
        explain.joint_probability_matrix(None, [{"view_1": p}])
    with pytest.raises(ValueError, match="steps"):
        explain.joint_probability_matrix(None, [(p, p)], steps=0)
    with pytest.raises(TypeError, match="model"):
        explain.joint_probability_matrix("model", [(p, p)])
