"""`save_explain_report` writes the documented files."""

import json
import os

import numpy as np
import tensorflow as tf

from keras_imsvd import explain

PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def test_report_files(tiny_model, images, labels, tmp_path):
    second = np.clip(images[::-1] + 0.05, 0, 1)
    dataset = tf.data.Dataset.from_tensor_slices(
        ({"view_1": images, "view_2": second}, labels)
    ).batch(16)
    reference = np.random.default_rng(0).dirichlet(np.ones(8), size=(40, 4))
    files = explain.save_explain_report(
        tiny_model,
        images,
        labels,
        dataset,
        str(tmp_path),
        reference=reference,
        joint_variables=3,
        top=4,
        k=5,
    )
    expected = {
        "joint_matrix",
        "redundancy",
        "redundancy_normalized",
        "bin_usage",
        "json",
    }
    exemplar_names = {name for name in files if name.startswith("exemplars_variable_")}
    assert len(exemplar_names) == 2
    assert set(files) == expected | exemplar_names
    for name, path in files.items():
        assert os.path.dirname(path) == str(tmp_path)
        if name != "json":
            with open(path, "rb") as handle:
                assert handle.read(8) == PNG_HEADER
            assert os.path.getsize(path) > 5_000
    with open(files["json"]) as handle:
        report = json.load(handle)
    assert report["statistics"]["summary"]["num_variables"] == 4
    assert len(report["statistics"]["variables"]) == 4
    assert report["joint_matrix"]["variables"] == [0, 1, 2]
    assert len(report["joint_matrix"]["agreement"]) == 3
    assert np.shape(report["redundancy"]["matrix"]) == (4, 4)
    assert "reference_redundancy" in report
    retrieval = report["retrieval"]
    assert retrieval["k"] == 5 and retrieval["num_queries"] == 40
    assert 0.0 <= retrieval["leave_one_out_accuracy"] <= 1.0
    assert report["files"]["json"] == "explain.json"


def test_report_without_optional_parts(tiny_model, images, tmp_path):
    files = explain.save_explain_report(
        tiny_model, images, output_dir=str(tmp_path / "out"), exemplar_variables=[3]
    )
    assert set(files) == {
        "redundancy",
        "redundancy_normalized",
        "bin_usage",
        "exemplars_variable_3",
        "json",
    }
    with open(files["json"]) as handle:
        report = json.load(handle)
    assert "joint_matrix" not in report and "retrieval" not in report
