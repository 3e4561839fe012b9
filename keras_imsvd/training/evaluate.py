"""The evaluation at the end of a run: kNN and linear probes on three feature sets."""

import numpy as np

from keras_imsvd import evaluation

LABELS_PER_CLASS = 10


class RunFailed(Exception):
    """The run finished training but its result would mean nothing."""


def as_features(name, features):
    """Float32 `(N, F)` features; `RunFailed` if any value is not finite.

    Mixed-precision encoders give bfloat16 or float16 features; the kNN and the
    probe run in float32.
    """
    import keras

    features = np.asarray(keras.ops.convert_to_numpy(features), dtype=np.float32)
    features = features.reshape(len(features), -1)
    bad = int(np.size(features) - np.isfinite(features).sum())
    if bad:
        raise RunFailed(
            f"the {name} features hold {bad} non-finite values; the evaluation "
            "would mean nothing"
        )
    return features


def evaluation_plan(y_train, y_test, seed=0):
    """What can be evaluated on these labels, and why the rest is skipped.

    Returns `(few, notes)`: the indices of the `LABELS_PER_CLASS`-per-class
    training subset (`None` if it cannot be formed) and a dict of notes on what
    is skipped. `notes["all"]` is set where no evaluation means anything.
    """
    notes = {}
    train_classes, test_classes = np.unique(y_train), np.unique(y_test)
    if len(train_classes) < 2 or len(test_classes) < 2:
        notes["all"] = (
            f"evaluation skipped: the training labels hold {len(train_classes)} "
            f"class(es) and the held-out labels {len(test_classes)}; a classifier "
            "needs at least 2"
        )
        return None, notes
    counts = {c: int(np.sum(y_train == c)) for c in train_classes}
    enough = [c for c, n in counts.items() if n >= LABELS_PER_CLASS]
    if len(enough) < 2:
        notes[f"linear_probe_{LABELS_PER_CLASS}_per_class"] = (
            f"skipped: fewer than 2 classes have {LABELS_PER_CLASS} training images"
        )
        return None, notes
    if len(enough) < len(counts):
        short = sorted(int(c) for c in counts if counts[c] < LABELS_PER_CLASS)
        notes[f"linear_probe_{LABELS_PER_CLASS}_per_class"] = (
            f"classes with fewer than {LABELS_PER_CLASS} training images are left "
            f"out: {short}"
        )
    return _few_labels(y_train, enough, seed), notes


def _few_labels(labels, classes, seed):
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=LABELS_PER_CLASS, replace=False)
        for c in classes
    ]
    return np.sort(np.concatenate(picks))


def evaluate_features(train, y_train, test, y_test, few, probe_epochs, seed):
    """kNN (k=20, T=0.07), the linear probe, and the probe on `few` labels."""
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    result = {
        "knn": evaluation.knn_classify(
            train,
            y_train,
            test,
            y_test,
            k=20,
            temperature=0.07,
            num_classes=num_classes,
        ),
        "linear_probe": evaluation.linear_probe(
            train,
            y_train,
            test,
            y_test,
            epochs=probe_epochs,
            num_classes=num_classes,
            seed=seed,
        )["accuracy"],
    }
    if few is not None:
        result[f"linear_probe_{LABELS_PER_CLASS}_per_class"] = evaluation.linear_probe(
            train[few],
            y_train[few],
            test,
            y_test,
            epochs=probe_epochs,
            num_classes=num_classes,
            seed=seed,
        )["accuracy"]
    return {key: float(value) for key, value in result.items()}


def format_table(results):
    """The results as a fixed-width text table, one row per feature set."""
    columns = list(next(iter(results.values())))
    header = f"{'features':<22}" + "".join(f"{c:>26}" for c in columns)
    lines = [header, "-" * len(header)]
    for name, row in results.items():
        lines.append(f"{name:<22}" + "".join(f"{row[c]:>26.4f}" for c in columns))
    return "\n".join(lines)
