"""Exemplars are the images of highest soft probability of each bin."""

import numpy as np
import pytest

from keras_imsvd import explain


def test_exemplars_of_a_model_are_the_top_probabilities(tiny_model, images):
    codes = tiny_model.discretize(images)
    for variable in (0, 3):
        result = explain.exemplars(tiny_model, images, variable=variable, top=5)
        assert result.shape == (8, 5)
        expected = np.argsort(-codes[:, variable, :], axis=0, kind="stable")[:5].T
        np.testing.assert_array_equal(result, expected)
        for j in range(8):
            chosen = codes[result[j], variable, j]
            assert np.all(np.diff(chosen) <= 0)  # decreasing
            others = np.delete(codes[:, variable, j], result[j])
            assert chosen.min() >= others.max()


def test_ties_go_to_the_lower_index():
    codes = np.array([[[0.5, 0.5]], [[0.9, 0.1]], [[0.5, 0.5]], [[0.1, 0.9]]])
    result = explain.exemplars(codes, variable=0, top=3)
    np.testing.assert_array_equal(result, [[1, 0, 2], [3, 0, 2]])


def test_bad_arguments_raise(images):
    codes = np.full((4, 2, 3), 1 / 3)
    with pytest.raises(ValueError, match="variable"):
        explain.exemplars(codes, variable=2)
    with pytest.raises(ValueError, match="top"):
        explain.exemplars(codes, variable=0, top=5)
    with pytest.raises(TypeError, match="variable"):
        explain.exemplars(codes, variable=0.5)
