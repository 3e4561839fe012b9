"""Linear probe: a softmax classifier trained on frozen features."""

import keras
import numpy as np

from keras_imsvd.evaluation import _checks

_ROWS_PER_EPOCH = 4096


def _normalisation(features, normalize, chunk_size=65536):
    """Mean and variance for `keras.layers.Normalization`, float32 `(F,)` each."""
    mean = features.mean(axis=0, dtype="float64")
    # Accumulated in chunks: a float64 copy of all features could be huge.
    squares = np.zeros_like(mean)
    for start in range(0, features.shape[0], chunk_size):
        centred = features[start : start + chunk_size] - mean
        squares += np.einsum("nf,nf->f", centred, centred)
    variance = squares / features.shape[0]
    if normalize != "per_feature":
        # One variance for all features: the mean square of the centred features.
        variance = np.full_like(mean, variance.mean())
    # Constant features are only centred (to 0) instead of divided by ~0.
    variance = np.where(variance > 1e-12, variance, 1.0)
    return mean.astype("float32"), variance.astype("float32")


def _passes_per_epoch(num_train, epochs):
    """Passes over a small training set to run as one Keras epoch.

    Each Keras epoch costs tens of milliseconds of fixed overhead, which
    dominates when the set is small (100 samples: 100 epochs would be mostly
    overhead). Passes are grouped so that a Keras epoch holds about
    `_ROWS_PER_EPOCH` rows; the group size divides `epochs`, so the number of
    passes is exactly `epochs`.
    """
    limit = max(1, _ROWS_PER_EPOCH // num_train)
    return max(d for d in range(1, min(limit, epochs) + 1) if epochs % d == 0)


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    epochs=100,
    batch_size=256,
    learning_rate=0.1,
    num_classes=None,
    normalize=True,
    verbose=0,
    seed=0,
):
    """Trains a linear softmax classifier on frozen features and tests it.

    The probe is `softmax(W normalise(x) + b)`, one `Dense` layer trained
    with cross-entropy by SGD with momentum 0.9 and a cosine decay of the
    learning rate to 0 over the run, as in the published linear evaluation.
    `normalise` is a `keras.layers.Normalization` with statistics fixed on the
    training set, so that one learning rate suits features of any scale:

    - `normalize=True`: centre each feature and divide all of them by one
      scale, the root mean square of the centred training features. The
      relative scales of the features, which carry information (a nearly dead
      feature stays small), are kept.
    - `normalize="per_feature"`: centre and divide each feature by its own
      standard deviation, i.e. a BatchNormalization without affine parameters
      in inference form. Near-constant features are blown up to unit variance.
    - `normalize=False`: raw features; pick `learning_rate` to their scale.

    SGD rather than Adam: with few labels (fewer samples than features), Adam
    spreads weight evenly over all features, noise included, and generalises
    markedly worse than SGD, whose implicit bias is the minimum-norm (max-margin)
    solution.

    The probe is a Keras model, so it runs on every backend. Time is linear in
    `epochs * num_train`: 45k samples of 512 features take about half a second
    per epoch on two CPU cores (a minute for 100 epochs); lower `epochs` or
    raise `batch_size` for quick checks. A small training set would spend most
    of its time in the fixed cost of each Keras epoch, so consecutive passes
    over it are run as one Keras epoch of about 4,096 rows, each pass in its
    own order: 100 epochs on 100 samples take a second or two.

    Args:
        train_features: Features of the labelled samples, `(N, F)`.
        train_labels: Integer class ids, `(N,)`.
        test_features: Features of the held-out samples, `(M, F)`.
        test_labels: Integer class ids, `(M,)`.
        epochs: Training epochs. Defaults to `100`.
        batch_size: Batch size; clipped to `N`. Defaults to `256`.
        learning_rate: Peak SGD learning rate. Defaults to `0.1`.
        num_classes: Number of classes; `None` infers it from the largest
            label of both sets. Defaults to `None`.
        normalize: `True` (centre, one global scale), `"per_feature"`
            (standardise each feature) or `False`, with statistics of the
            training set. Defaults to `True`.
        verbose: Verbosity of `fit`, as in `keras.Model.fit`. Defaults to `0`.
        seed: Seed of the weight initialiser and, for small training sets, of
            the order of the samples; otherwise `fit` shuffles with Keras'
            global seed (`keras.utils.set_random_seed`). Defaults to `0`.

    Returns:
        A dict with `accuracy` (top-1 on the test set), `train_accuracy` (top-1
        on the training set after training), `history` (the `History.history`
        dict of `fit`: `loss` and `accuracy` per Keras epoch),
        `passes_per_history_entry` (passes over the training set per Keras
        epoch, 1 unless the set is small) and `model` (the trained probe,
        taking raw features and returning logits).

    Example:

    ```python
    result = keras_imsvd.evaluation.linear_probe(
        model.embed(x_train), y_train, model.embed(x_test), y_test, epochs=100
    )
    print(result["accuracy"])
    ```

    References:
        - Niu, Xia, Shan, Wang, "Information-Maximized Soft Variable
          Discretization for Self-Supervised Image Representation Learning",
          2025. https://arxiv.org/abs/2501.03469
        - Soudry et al., "The Implicit Bias of Gradient Descent on Separable
          Data", 2018. https://arxiv.org/abs/1710.10345
    """
    train_features, test_features = _checks.check_feature_pair(
        train_features, test_features
    )
    train_labels = _checks.check_labels(
        "train_labels", train_labels, train_features.shape[0], "train_features"
    )
    test_labels = _checks.check_labels(
        "test_labels", test_labels, test_features.shape[0], "test_features"
    )
    num_classes = _checks.check_num_classes(num_classes, train_labels, test_labels)
    _checks.check_positive_int("epochs", epochs)
    _checks.check_positive_int("batch_size", batch_size)
    _checks.check_positive_number("learning_rate", learning_rate)
    if normalize not in (True, False, "per_feature"):
        raise ValueError(
            'normalize must be True, False or "per_feature". '
            f"Received: normalize={normalize!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer. Received: seed={seed!r}")

    train_features = train_features.astype("float32", copy=False)
    test_features = test_features.astype("float32", copy=False)
    num_train, num_features = train_features.shape
    batch_size = min(batch_size, num_train)
    passes = _passes_per_epoch(num_train, epochs)
    if passes > 1:
        # One Keras epoch = `passes` passes, each in its own random order.
        rng = np.random.default_rng(seed)
        order = np.concatenate([rng.permutation(num_train) for _ in range(passes)])
        fit_features, fit_labels = train_features[order], train_labels[order]
    else:
        fit_features, fit_labels = train_features, train_labels
    keras_epochs = epochs // passes
    steps = keras_epochs * -(-fit_features.shape[0] // batch_size)

    inputs = keras.Input((num_features,))
    x = inputs
    if normalize:
        mean, variance = _normalisation(train_features, normalize)
        x = keras.layers.Normalization(mean=mean, variance=variance)(x)
    outputs = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
    )(x)
    model = keras.Model(inputs, outputs, name="linear_probe")
    model.compile(
        optimizer=keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(float(learning_rate), steps),
            momentum=0.9,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    history = model.fit(
        fit_features,
        fit_labels,
        batch_size=batch_size,
        epochs=keras_epochs,
        shuffle=passes == 1,
        verbose=verbose,
    )

    def accuracy(features, labels):
        # Eager calls: `predict` would trace a new function for every probe,
        # and TensorFlow warns about the retracing when probes follow each other.
        logits = np.concatenate(
            [
                keras.ops.convert_to_numpy(model(features[i : i + 4096]))
                for i in range(0, len(features), 4096)
            ]
        )
        return float(np.mean(np.argmax(logits, axis=1) == labels))

    return {
        "accuracy": accuracy(test_features, test_labels),
        "train_accuracy": accuracy(train_features, train_labels),
        "history": history.history,
        "passes_per_history_entry": passes,
        "model": model,
    }
