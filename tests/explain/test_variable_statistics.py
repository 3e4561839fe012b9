"""Per-variable statistics on hand-built codes and on a real model."""

import json
import math

import numpy as np
import pytest

from keras_imsvd import explain


def _codes():
    """Two variables of 4 bins over 8 images; 0.7 on the hard code, 0.1 else.

    Variable 0 uses bins 0 and 1 only (bins 2, 3 dead); variable 1 uses each
    bin twice.
    """
    hard = np.array([[0, 0], [1, 1], [0, 2], [1, 3], [0, 0], [1, 1], [0, 2], [1, 3]])
    codes = np.full((8, 2, 4), 0.1)
    np.put_along_axis(codes, hard[..., None], 0.7, axis=-1)
    return codes, hard


def test_hand_built_statistics():
    codes, _ = _codes()
    stats = explain.variable_statistics(codes)
    first, second = stats["variables"]
    # Variable 0: mean distribution (0.4, 0.4, 0.1, 0.1).
    entropy = -(2 * 0.4 * math.log(0.4) + 2 * 0.1 * math.log(0.1))
    assert first["entropy"] == pytest.approx(entropy, abs=1e-12)
    assert first["normalized_entropy"] == pytest.approx(entropy / math.log(4))
    assert first["code_entropy"] == pytest.approx(math.log(2), abs=1e-12)
    assert first["bins_used"] == 2
    assert first["dead_bins"] == [2, 3]
    assert first["bin_counts"] == [4, 4, 0, 0]
    assert first["mean_confidence"] == pytest.approx(0.7)
    # Variable 1: uniform.
    assert second["entropy"] == pytest.approx(math.log(4), abs=1e-12)
    assert second["normalized_entropy"] == pytest.approx(1.0)
    assert second["bins_used"] == 4
    assert second["dead_bins"] == []
    summary = stats["summary"]
    assert summary["num_images"] == 8
    assert summary["num_variables"] == 2
    assert summary["bin_size"] == 4
    assert summary["bits_per_image"] == 4
    assert summary["num_dead_bins"] == 2
    assert summary["dead_bin_fraction"] == pytest.approx(0.25)
    assert summary["mean_bins_used"] == pytest.approx(3.0)
    assert summary["num_collapsed_variables"] == 0
    assert summary["mean_entropy"] == pytest.approx((entropy + math.log(4)) / 2)
    json.dumps(stats)  # JSON-serialisable


def test_label_mutual_information():
    codes, hard = _codes()
    labels = hard[:, 0] * 10  # variable 0 is the label
    stats = explain.variable_statistics(codes, labels=labels)
    first, second = stats["variables"]
    assert first["label_mutual_information"] == pytest.approx(math.log(2), abs=1e-12)
    # Variable 1 determines the label too (bins 0, 2 -> 0; bins 1, 3 -> 10).
    assert second["label_mutual_information"] == pytest.approx(math.log(2), abs=1e-12)
    unrelated = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    stats = explain.variable_statistics(codes, labels=unrelated)
    assert stats["variables"][0]["label_mutual_information"] == pytest.approx(
        0.0, abs=1e-12
    )
    assert stats["summary"]["most_informative_variables"][0] == 1
    json.dumps(stats)
    with pytest.raises(ValueError, match="labels"):
        explain.variable_statistics(codes, labels=unrelated[:3])


def test_collapsed_variable():
    codes = np.zeros((5, 1, 3))
    codes[:, 0, 2] = 1.0
    stats = explain.variable_statistics(codes)
    assert stats["variables"][0]["bins_used"] == 1
    assert stats["variables"][0]["entropy"] == pytest.approx(0.0)
    assert stats["summary"]["num_collapsed_variables"] == 1


def test_model_statistics_match_its_codes(tiny_model, images, labels):
    stats = explain.variable_statistics(tiny_model, images, labels=labels)
    expected = explain.variable_statistics(tiny_model.discretize(images), labels=labels)
    assert stats["summary"].keys() == expected["summary"].keys()
    for key, value in stats["summary"].items():
        assert value == pytest.approx(expected["summary"][key]), key
    hard = tiny_model.codes(images)
    for k, entry in enumerate(stats["variables"]):
        assert entry["bin_counts"] == np.bincount(hard[:, k], minlength=8).tolist()
        assert 0.0 <= entry["normalized_entropy"] <= 1.0 + 1e-9
    json.dumps(stats)


def test_codes_of_wrong_rank_raise():
    with pytest.raises(ValueError, match="model_or_codes"):
        explain.variable_statistics(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="floating"):
        explain.variable_statistics(np.zeros((3, 4, 2), dtype="int32"))
