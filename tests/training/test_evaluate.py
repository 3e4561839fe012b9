"""What the end-of-run evaluation measures, skips, and refuses."""

import numpy as np
import pytest

from keras_imsvd.training.evaluate import RunFailed
from keras_imsvd.training.evaluate import as_features
from keras_imsvd.training.evaluate import evaluation_plan
from keras_imsvd.training.evaluate import format_table


def test_labels_of_one_class_skip_the_evaluation_with_a_note():
    few, notes = evaluation_plan(np.zeros(50, int), np.zeros(10, int))
    assert few is None
    assert notes["all"].startswith("evaluation skipped: the training labels hold 1")
    _, notes = evaluation_plan(np.arange(50) % 2, np.zeros(10, int))
    assert "held-out labels 1" in notes["all"]


def test_classes_with_fewer_than_ten_images_leave_the_few_label_probe():
    labels = np.array([0] * 30 + [1] * 12 + [2] * 4)
    few, notes = evaluation_plan(labels, np.array([0, 1, 2]), seed=3)
    assert np.bincount(labels[few], minlength=3).tolist() == [10, 10, 0]
    assert len(set(few.tolist())) == 20
    assert notes == {
        "linear_probe_10_per_class": "classes with fewer than 10 training images "
        "are left out: [2]"
    }
    # Only one class with ten images: the few-label probe cannot be run.
    few, notes = evaluation_plan(np.array([0] * 30 + [1] * 9), np.array([0, 1]))
    assert few is None and "skipped" in notes["linear_probe_10_per_class"]
    assert "all" not in notes


def test_features_are_float32_and_non_finite_ones_end_the_run():
    features = as_features("learned", np.ones((4, 2, 3), np.float16))
    assert features.dtype == np.float32 and features.shape == (4, 6)
    bad = np.ones((4, 3), np.float32)
    bad[1, 2] = np.nan
    bad[3, 0] = np.inf
    with pytest.raises(RunFailed, match="the learned features hold 2 non-finite"):
        as_features("learned", bad)


def test_results_table_has_a_row_per_feature_set():
    table = format_table(
        {"a": {"knn": 0.5, "linear_probe": 0.25}, "b": {"knn": 1.0, "linear_probe": 0}}
    )
    lines = table.splitlines()
    assert lines[0].split() == ["features", "knn", "linear_probe"]
    assert lines[2].split() == ["a", "0.5000", "0.2500"]
    assert lines[3].split() == ["b", "1.0000", "0.0000"]
