"""Callbacks that measure representation quality during training."""

import math

import keras

from keras_imsvd.evaluation import _checks
from keras_imsvd.evaluation.features import extract_features
from keras_imsvd.evaluation.knn import knn_classify


def _check_data(name, data):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            f"{name} must be a tuple (images, labels) of arrays. "
            f"Received: type={type(data).__name__}"
        )
    images, labels = data
    if not hasattr(images, "__len__"):
        raise TypeError(
            f"{name}[0] must be an array of images. "
            f"Received: type={type(images).__name__}"
        )
    labels = _checks.check_labels(f"{name}[1]", labels, len(images), f"{name}[0]")
    return images, labels


class KNNMonitor(keras.callbacks.Callback):
    """Logs the weighted-kNN accuracy of the model's features during `fit`.

    Every `every` epochs, on the first epoch of each `fit` and on the last one,
    features of the un-augmented `train_data` and `validation_data` images are
    computed with the current weights and the validation images are classified
    by `keras_imsvd.evaluation.knn_classify` (k neighbours, temperature T,
    cosine similarity). The accuracy goes into the epoch's `logs[name]`, so it
    appears in `History`, `CSVLogger` and `TensorBoard`. On the other epochs
    `logs[name]` is `NaN`: the History lists stay aligned with the epochs, and
    CSVLogger, which fixes its columns at the first epoch, gets the column.
    `history` keeps the `(epoch, accuracy)` pairs actually measured.

    Features come from `feature_fn(batch_of_images)` if given; otherwise from
    `model.embed(images)` when the model has that method (as
    `keras_imsvd.IMSVDModel` does: backbone features); otherwise from
    `model.predict(images)`. Outputs with more than two axes are flattened.

    Place the monitor before `CSVLogger`, `TensorBoard`, `ModelCheckpoint` or
    `EarlyStopping` in the callback list so that they see the value. Those
    that monitor it see `NaN`, never an improvement, on unmeasured epochs:
    count `EarlyStopping`'s `patience` in epochs, i.e. `every` per measurement.

    Args:
        train_data: Tuple `(images, labels)` of arrays: the labelled memory
            bank of the kNN.
        validation_data: Tuple `(images, labels)` of arrays to classify.
        every: Measure every this many epochs (epochs `every - 1`,
            `2 * every - 1`, ... counted from 0). Defaults to `5`.
        k: Number of neighbours. Defaults to `20`.
        temperature: Temperature of the vote weights. Defaults to `0.07`.
        feature_fn: Optional callable from a batch of images to features
            `(B, F)`. Defaults to `None`.
        batch_size: Inference batch size. Defaults to `256`.
        name: Key of the accuracy in the logs. Defaults to
            `"val_knn_accuracy"`.

    Example:

    ```python
    monitor = keras_imsvd.evaluation.KNNMonitor(
        (x_train, y_train), (x_val, y_val), every=10
    )
    model.fit(views, epochs=100, callbacks=[monitor, keras.callbacks.CSVLogger(path)])
    ```

    References:
        - Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric
          Instance Discrimination", 2018. https://arxiv.org/abs/1805.01978
    """

    def __init__(
        self,
        train_data,
        validation_data,
        every=5,
        k=20,
        temperature=0.07,
        feature_fn=None,
        batch_size=256,
        name="val_knn_accuracy",
    ):
        super().__init__()
        self.train_data = _check_data("train_data", train_data)
        self.validation_data = _check_data("validation_data", validation_data)
        _checks.check_positive_int("every", every)
        _checks.check_positive_int("k", k)
        _checks.check_positive_number("temperature", temperature)
        _checks.check_positive_int("batch_size", batch_size)
        if feature_fn is not None and not callable(feature_fn):
            raise TypeError(
                f"feature_fn must be callable or None. Received: {feature_fn!r}"
            )
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string. Received: {name!r}")
        self.every = every
        self.k = k
        self.temperature = temperature
        self.feature_fn = feature_fn
        self.batch_size = batch_size
        self.name = name
        self.history = []
        self._first_epoch = None

    def features(self, images):
        """Features of `images` under the current weights, `(N, F)` NumPy."""
        if self.feature_fn is not None:
            return extract_features(self.feature_fn, images, self.batch_size)
        return extract_features(self.model, images, self.batch_size)

    def evaluate(self):
        """Computes the kNN accuracy now, without logging it.

        Returns:
            The accuracy on `validation_data`, a float in `[0, 1]`.
        """
        train_images, train_labels = self.train_data
        validation_images, validation_labels = self.validation_data
        num_classes = int(max(train_labels.max(), validation_labels.max())) + 1
        return knn_classify(
            self.features(train_images),
            train_labels,
            self.features(validation_images),
            validation_labels,
            k=min(self.k, len(train_labels)),
            temperature=self.temperature,
            num_classes=num_classes,
        )

    def _due(self, epoch):
        last = (self.params or {}).get("epochs")
        return (
            epoch == self._first_epoch
            or (epoch + 1) % self.every == 0
            or (last is not None and epoch == last - 1)
        )

    def on_train_begin(self, logs=None):
        self._first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch
        if self._due(epoch):
            accuracy = self.evaluate()
            self.history.append((epoch, accuracy))
        else:
            accuracy = math.nan
        if logs is not None:
            logs[self.name] = accuracy
