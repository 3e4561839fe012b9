"""`save_explain_report`: every explain figure and statistic, written to a folder."""

import json
import os

import numpy as np

from keras_imsvd.explain._codes import as_images
from keras_imsvd.explain._codes import soft_codes
from keras_imsvd.explain._codes import to_numpy
from keras_imsvd.explain.code_index import CodeIndex
from keras_imsvd.explain.exemplars import plot_exemplars
from keras_imsvd.explain.joint_matrix import joint_probability_matrix
from keras_imsvd.explain.mutual_information import mutual_information_matrix
from keras_imsvd.explain.mutual_information import normalize_redundancy
from keras_imsvd.explain.mutual_information import redundancy_matrix
from keras_imsvd.explain.plots import plot_bin_usage
from keras_imsvd.explain.plots import plot_joint_matrix
from keras_imsvd.explain.plots import plot_redundancy
from keras_imsvd.explain.statistics import variable_statistics

JSON_NAME = "explain.json"


def _leave_one_out_accuracy(hard, labels, k, max_queries):
    """kNN accuracy of hard codes, each query's own entry left out."""
    index = CodeIndex(hard, labels)
    k = min(k, len(hard) - 1)
    spaced = np.linspace(0, len(hard) - 1, min(max_queries, len(hard)))
    queries = np.unique(spaced.astype("int64"))
    similarities, indices = index.query(hard[queries], k=k + 1)
    keep = indices != queries[:, None]  # (M, k + 1)
    # Drop the query itself, or the last neighbour where it was not returned.
    keep[keep.all(axis=1), -1] = False
    similarities = similarities[keep].reshape(len(queries), k)
    indices = indices[keep].reshape(len(queries), k)
    classes, label_ids = np.unique(labels, return_inverse=True)
    scores = np.zeros((len(queries), len(classes)))
    for j in range(k):
        np.add.at(
            scores,
            (np.arange(len(queries)), label_ids[indices[:, j]]),
            similarities[:, j],
        )
    predictions = classes[np.argmax(scores, axis=1)]
    return float(np.mean(predictions == labels[queries])), len(queries), k


def _save(figure, path):
    figure.savefig(path, dpi=120)
    return path


def _matrix_summary(matrix, normalized=None):
    off_diagonal = ~np.eye(len(matrix), dtype=bool)
    summary = {}
    for prefix, values in (("", matrix), ("normalized_", normalized)):
        if values is None:
            continue
        off = values[off_diagonal]
        summary[f"mean_{prefix}off_diagonal"] = float(off.mean()) if off.size else 0.0
        summary[f"max_{prefix}off_diagonal"] = float(off.max()) if off.size else 0.0
    summary["matrix"] = np.round(matrix, 6).tolist()
    return summary


def save_explain_report(
    model,
    images,
    labels=None,
    multiview_ds=None,
    output_dir="explain",
    reference=None,
    joint_variables=5,
    exemplar_variables=None,
    top=8,
    k=20,
    max_retrieval_queries=2000,
    batch_size=256,
    steps=None,
):
    """Writes the explain figures and `explain.json` for a trained model.

    The single entry point behind `train.py --explain`. Files written to
    `output_dir`:

    - `joint_matrix.png`: the first `joint_variables` blocks of the joint
      probability matrix over `multiview_ds` (only with `multiview_ds`);
    - `redundancy.png`: K x K mutual information (nats) between the
      variables of a view, beside that of `reference` when given;
    - `redundancy_normalized.png`: the same divided by the smaller entropy of
      each pair (`normalize_redundancy`), the fair comparison with a
      reference whose variables carry less information;
    - `exemplars_variable_{k}.png`: top images per bin, one file per variable
      of `exemplar_variables`;
    - `bin_usage.png`: entropy and bin usage of every variable;
    - `explain.json`: `{"statistics": variable_statistics(...),
      "redundancy": {...}, "reference_redundancy": {...} (with reference),
      "joint_matrix": {...} (with multiview_ds), "retrieval": {...} (with
      labels), "files": {...}}`. Redundancy and joint entries hold the mean and
      max off-diagonal mutual information (nats; redundancy entries also
      normalised) and the matrix (entropies on the redundancy diagonal); the
      joint entry also `mean_diagonal`, the mean information a variable shares
      between the two views, and `agreement`, each variable's probability that
      both views fall in the same bin (trace of its diagonal block).
      Retrieval is a leave-one-out, similarity-weighted kNN on the hard codes
      of up to `max_retrieval_queries` of `images` (evenly spaced), against
      all of them.

    Args:
        model: A trained `IMSVDModel`.
        images: Images `(N, H, W, C)` as an array (drawn as exemplars).
        labels: Labels `(N,)` of `images`, or `None`; they add the label
            information of each variable and the retrieval accuracy.
            Defaults to `None`.
        multiview_ds: Two-view data for the joint matrix (see
            `joint_probability_matrix`), or `None` to skip it. Defaults to
            `None`.
        output_dir: Folder to write to, created if needed. Defaults to
            `"explain"`.
        reference: A model or soft codes of `images` to compare redundancy
            with, or `None`. A model trained with `off_diagonal_weight=0`
            shows what the off-block term removes; an untrained model's
            near-uniform codes give near-zero redundancy and say little.
            Defaults to `None`.
        joint_variables: Number of leading variables in the joint matrix.
            Defaults to `5`.
        exemplar_variables: Variables to draw exemplars of, or `None` for
            two: the most label-informative with labels, else the two of
            highest entropy. Defaults to `None`.
        top: Exemplars per bin. Defaults to `8`.
        k: Neighbours of the retrieval vote. Defaults to `20`.
        max_retrieval_queries: Most retrieval queries. Defaults to `2000`.
        batch_size: Inference batch size. Defaults to `256`.
        steps: Batches of `multiview_ds` to read, or `None` for all.
            Defaults to `None`.

    Returns:
        A dict from the names above (`"joint_matrix"`, `"redundancy"`,
        `"redundancy_normalized"`, `"exemplars_variable_{k}"`, `"bin_usage"`,
        `"json"`) to file paths.

    Example:

    ```python
    from keras_imsvd import explain
    files = explain.save_explain_report(
        model, test_images, test_labels, multiview_ds, "runs/explain"
    )
    ```
    """
    images = as_images(images)
    os.makedirs(output_dir, exist_ok=True)
    codes = soft_codes(model, images, batch_size=batch_size)  # (N, K, b)
    num_variables = codes.shape[1]
    if labels is not None:
        labels = to_numpy(labels).reshape(-1)
    statistics = variable_statistics(codes, labels=labels)
    report = {"statistics": statistics}
    files = {}

    if multiview_ds is not None:
        selected = list(range(min(joint_variables, num_variables)))
        P = joint_probability_matrix(
            model, multiview_ds, variables=selected, batch_size=batch_size, steps=steps
        )
        bin_size = codes.shape[2]
        between_views = mutual_information_matrix(P, bin_size)
        summary = _matrix_summary(between_views)
        summary["mean_diagonal"] = float(np.mean(np.diag(between_views)))
        summary["variables"] = selected
        summary["agreement"] = [
            float(
                np.trace(
                    P[
                        i * bin_size : (i + 1) * bin_size,
                        i * bin_size : (i + 1) * bin_size,
                    ]
                )
            )
            for i in range(len(selected))
        ]
        report["joint_matrix"] = summary
        path = os.path.join(output_dir, "joint_matrix.png")
        files["joint_matrix"] = _save(plot_joint_matrix(P, bin_size=bin_size), path)

    redundancy = redundancy_matrix(codes)
    report["redundancy"] = _matrix_summary(redundancy, normalize_redundancy(redundancy))
    reference_redundancy = None
    if reference is not None:
        reference_redundancy = redundancy_matrix(
            soft_codes(reference, images, batch_size=batch_size)
        )
        report["reference_redundancy"] = _matrix_summary(
            reference_redundancy, normalize_redundancy(reference_redundancy)
        )
    for name, normalize in (("redundancy", False), ("redundancy_normalized", True)):
        figure = plot_redundancy(
            redundancy,
            reference=reference_redundancy,
            titles=("reference", "trained model"),
            normalize=normalize,
        )
        files[name] = _save(figure, os.path.join(output_dir, f"{name}.png"))

    if exemplar_variables is None:
        entries = statistics["variables"]
        key = "label_mutual_information" if labels is not None else "entropy"
        ranked = sorted(range(num_variables), key=lambda v: -entries[v][key])
        exemplar_variables = sorted(ranked[:2])
    for variable in exemplar_variables:
        name = f"exemplars_variable_{int(variable)}"
        path = os.path.join(output_dir, f"{name}.png")
        figure = plot_exemplars(
            codes, images, variable=int(variable), top=min(top, len(images))
        )
        files[name] = _save(figure, path)

    path = os.path.join(output_dir, "bin_usage.png")
    files["bin_usage"] = _save(plot_bin_usage(statistics), path)

    if labels is not None and len(images) > 1:
        hard = np.argmax(codes, axis=-1)
        accuracy, num_queries, used_k = _leave_one_out_accuracy(
            hard, labels, k, max_retrieval_queries
        )
        report["retrieval"] = {
            "leave_one_out_accuracy": accuracy,
            "k": used_k,
            "num_queries": num_queries,
            "vote": "similarity",
        }

    files["json"] = os.path.join(output_dir, JSON_NAME)
    report["files"] = {name: os.path.basename(p) for name, p in files.items()}
    with open(files["json"], "w") as handle:
        json.dump(report, handle, indent=2)
    return files
