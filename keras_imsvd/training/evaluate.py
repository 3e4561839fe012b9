"""The evaluation at the end of a run: kNN and linear probes on three feature sets."""

import inspect
from types import MappingProxyType

import numpy as np

from keras_imsvd import evaluation
from keras_imsvd.training.config import published_protocol

LABELS_PER_CLASS = 10
# The weighted kNN of the published eval_knn.py, in both protocols.
KNN = MappingProxyType({"k": 20, "temperature": 0.07})


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
            train, y_train, test, y_test, num_classes=num_classes, **KNN
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
    """The results as a fixed-width text table, one row per feature set; a
    value a row does not have is shown as `-`."""
    columns = list(dict.fromkeys(c for row in results.values() for c in row))
    header = f"{'features':<22}" + "".join(f"{c:>26}" for c in columns)
    lines = [header, "-" * len(header)]
    for name, row in results.items():
        cells = (f"{row[c]:>26.4f}" if c in row else f"{'-':>26}" for c in columns)
        lines.append(f"{name:<22}" + "".join(cells))
    return "\n".join(lines)


def evaluation_settings(config, num_train):
    """What metrics.json says of the evaluation: `{"protocol", "settings"}`."""
    knn = dict(KNN)
    if config.eval_protocol == "published":
        settings = evaluation.protocol_settings(
            published_protocol(config),
            epochs=config.eval_epochs,
            image_size=config.image_size,
        )
        settings["batch_size"] = min(settings["batch_size"], num_train)
        settings["knn"] = knn
        return {"protocol": "published", "settings": settings}
    probe = inspect.signature(evaluation.linear_probe).parameters
    return {
        "protocol": "fast",
        "settings": {
            "knn": knn,
            "linear_probe": {
                "features": "precomputed, un-augmented",
                "epochs": config.probe_epochs,
                "batch_size": probe["batch_size"].default,
                "learning_rate": probe["learning_rate"].default,
                "schedule": "cosine",
                "labels_per_class_probe": LABELS_PER_CLASS,
            },
        },
    }


def describe(evaluation_record):
    """One line for results.txt naming the protocol and its main settings."""
    settings = evaluation_record["settings"]
    knn = f"kNN k={KNN['k']} T={KNN['temperature']} on un-augmented features"
    if evaluation_record["protocol"] == "fast":
        probe = settings["linear_probe"]
        return (
            f"evaluation: fast protocol: {knn}; linear probes on precomputed "
            f"un-augmented features ({probe['epochs']} epochs, SGD lr "
            f"{probe['learning_rate']}, cosine)"
        )
    schedule = (
        f"x{settings['decay']} at epochs {settings['milestones']}"
        if settings["schedule"] == "step"
        else "cosine"
    )
    low, high = settings["crop_scale"]
    return (
        f"evaluation: published {settings['protocol']} linear evaluation "
        f"({settings['source']}): {settings['epochs']} epochs, batch "
        f"{settings['batch_size']}, SGD lr {settings['learning_rate']:g} momentum "
        f"{settings['momentum']} weight decay {settings['weight_decay']:g}, "
        f"{schedule}; training crops {settings['image_size']} px of scale "
        f"{low}-{high} + flip, test resize {settings['test_resize']} + centre "
        f"crop; frozen encoder in inference mode; best = best test epoch; {knn}"
    )


def published_evaluation(
    encoder, features, images, labels, config, verbose, linear, image_labels=None
):
    """kNN on `features` and, if `linear`, the published linear evaluation on
    `images`.

    `features`, `images` and `labels` are `(train, test)` pairs; the test
    accuracy is taken after every epoch, as the published scripts do. `images`
    may be lists of files, labelled by `image_labels` (the features then hold
    only the readable files, and `labels` theirs).
    """
    (train, test), (y_train, y_test) = features, labels
    image_labels = labels if image_labels is None else image_labels
    num_classes = max(int(np.max(y)) for y in (*labels, *image_labels)) + 1
    knn = evaluation.knn_classify(
        train, y_train, test, y_test, num_classes=num_classes, **KNN
    )
    if not linear:
        return {"knn": float(knn)}
    result = evaluation.linear_evaluation(
        encoder,
        (images[0], image_labels[0]),
        (images[1], image_labels[1]),
        protocol=published_protocol(config),
        epochs=config.eval_epochs,
        image_size=config.image_size,
        num_classes=num_classes,
        evaluate_every_epoch=True,
        seed=config.seed,
        verbose=verbose,
    )
    row = {
        "knn": knn,
        "linear_top1": result["top1"],
        "linear_best_top1": result["best_top1"],
    }
    if result["top5"] is not None:
        row["linear_top5"] = result["top5"]
        row["linear_best_top5"] = result["best_top5"]
    return {key: float(value) for key, value in row.items()}
