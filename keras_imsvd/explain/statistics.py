"""Per-variable statistics of soft codes: entropy, bin usage, confidence."""

import math

import numpy as np

from keras_imsvd.explain._codes import soft_codes
from keras_imsvd.explain._codes import to_numpy
from keras_imsvd.explain.code_index import bits_per_image
from keras_imsvd.explain.mutual_information import _block_mutual_information
from keras_imsvd.explain.mutual_information import _entropy


def _label_information(hard, labels, bin_size):
    """MI (nats) between each variable's hard code and the label, `(K,)`."""
    _, label_ids = np.unique(labels, return_inverse=True)
    num_classes = int(label_ids.max()) + 1
    num_variables = hard.shape[1]
    table = np.zeros((num_variables, bin_size, num_classes), dtype="float64")
    for k in range(num_variables):
        np.add.at(table[k], (hard[:, k], label_ids), 1.0)
    return _block_mutual_information(table)


def variable_statistics(model_or_codes, images=None, labels=None, batch_size=256):
    """Per-variable statistics of the discrete codes of a set of images.

    For each variable k, with `p[n, k]` the soft code of image n and
    `c[n, k] = argmax_j p[n, k, j]` its hard code:

    - `entropy`: `H(mean_n p[n, k])` in nats, and `normalized_entropy` that
      value over `log b` (1: the bins are used evenly, as `L_dia` asks; 0: a
      collapsed variable);
    - `code_entropy`: entropy of the histogram of hard codes, nats;
    - `bins_used`: bins that are the hard code of at least one image;
      `dead_bins`: the others, never the argmax; `bin_counts`: the histogram;
    - `mean_confidence`: `mean_n max_j p[n, k, j]` (1/b: undecided, 1: sure);
    - `label_mutual_information` (with `labels`): mutual information in nats
      between the hard code and the class label, which tells the variables
      that carry class information.

    Args:
        model_or_codes: An `IMSVDModel`, or soft codes `(N, K, b)`.
        images: Images for the model, `None` with codes. Defaults to `None`.
        labels: Class labels `(N,)`, or `None`. Defaults to `None`.
        batch_size: Inference batch size. Defaults to `256`.

    Returns:
        A JSON-serialisable dict: `"variables"`, a list of one dict per
        variable with the keys above (and `"variable"`, its index), and
        `"summary"`, with `num_images`, `num_variables`, `bin_size`,
        `bits_per_image`, `mean_entropy`, `mean_normalized_entropy`,
        `min_normalized_entropy`, `mean_bins_used`, `num_dead_bins`,
        `dead_bin_fraction`, `num_collapsed_variables` (one bin used),
        `mean_confidence` and, with labels, `mean_label_mutual_information`
        and `most_informative_variables` (up to 5, best first).

    Example:

    ```python
    import json
    from keras_imsvd import explain
    stats = explain.variable_statistics(model, images)
    print(json.dumps(stats["summary"], indent=2))
    ```
    """
    codes = soft_codes(model_or_codes, images, batch_size=batch_size)
    num_images, num_variables, bin_size = codes.shape
    if not num_images:
        raise ValueError("At least one image is needed. Received: 0 images")
    hard = np.argmax(codes, axis=-1)  # (N, K)
    marginals = codes.astype("float64").mean(axis=0)  # (K, b)
    entropies = _entropy(marginals)  # (K,)
    counts = np.stack(
        [np.bincount(hard[:, k], minlength=bin_size) for k in range(num_variables)]
    )  # (K, b)
    code_entropies = _entropy(counts)  # (K,)
    confidence = codes.max(axis=-1).astype("float64").mean(axis=0)  # (K,)
    label_information = None
    if labels is not None:
        labels = to_numpy(labels).reshape(-1)
        if len(labels) != num_images:
            raise ValueError(
                "`labels` must hold one label per image. Received: "
                f"{len(labels)} labels for {num_images} images"
            )
        label_information = _label_information(hard, labels, bin_size)
    log_bins = math.log(bin_size)
    variables = []
    for k in range(num_variables):
        entry = {
            "variable": k,
            "entropy": float(entropies[k]),
            "normalized_entropy": float(entropies[k] / log_bins),
            "code_entropy": float(code_entropies[k]),
            "bins_used": int(np.count_nonzero(counts[k])),
            "dead_bins": [int(j) for j in np.flatnonzero(counts[k] == 0)],
            "mean_confidence": float(confidence[k]),
            "bin_counts": [int(c) for c in counts[k]],
        }
        if label_information is not None:
            entry["label_mutual_information"] = float(label_information[k])
        variables.append(entry)
    used = np.count_nonzero(counts, axis=1)  # (K,)
    dead = int(num_variables * bin_size - used.sum())
    summary = {
        "num_images": int(num_images),
        "num_variables": int(num_variables),
        "bin_size": int(bin_size),
        "bits_per_image": bits_per_image(num_variables, bin_size),
        "mean_entropy": float(entropies.mean()),
        "mean_normalized_entropy": float(entropies.mean() / log_bins),
        "min_normalized_entropy": float(entropies.min() / log_bins),
        "mean_bins_used": float(used.mean()),
        "num_dead_bins": dead,
        "dead_bin_fraction": dead / (num_variables * bin_size),
        "num_collapsed_variables": int(np.count_nonzero(used == 1)),
        "mean_confidence": float(confidence.mean()),
    }
    if label_information is not None:
        order = np.argsort(-label_information, kind="stable")[:5]
        summary["mean_label_mutual_information"] = float(label_information.mean())
        summary["most_informative_variables"] = [int(k) for k in order]
    return {"summary": summary, "variables": variables}
