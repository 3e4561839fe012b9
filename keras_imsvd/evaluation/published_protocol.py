"""The published linear evaluations: a linear classifier on a frozen encoder,
trained on augmented images."""

import math
import numbers
import os
import time
from types import MappingProxyType

import keras
import numpy as np

from keras_imsvd import augment
from keras_imsvd.data.records import TFRecordImages
from keras_imsvd.evaluation import _checks
from keras_imsvd.evaluation import _image_batches

# Read from the published code (niuchuangnn/IMSVD): linear_eval_cifar.py for
# CIFAR-10, linear_eval.py for ImageNet. Both train torch.nn.Linear(F, classes)
# initialised N(0, 0.01) with a zero bias, by torch.optim.SGD with momentum 0.9
# (weight decay added to the gradient), on a frozen backbone in eval mode, and
# test by resizing to 8/7 of the crop size and cropping the centre.
PUBLISHED_PROTOCOLS = MappingProxyType(
    {
        "cifar10": MappingProxyType(
            {
                "epochs": 100,
                "batch_size": 256,
                "learning_rate": 30.0,
                "momentum": 0.9,
                "weight_decay": 0.0,
                "schedule": "step",
                "milestones": (60, 80),
                "decay": 0.1,
                "image_size": 32,
                "crop_scale": (0.8, 1.0),
                "crop_ratio": (3.0 / 4.0, 4.0 / 3.0),
                "test_resize": (8, 7),
                "source": "linear_eval_cifar.py",
            }
        ),
        "imagenet": MappingProxyType(
            {
                "epochs": 100,
                "batch_size": 256,
                "learning_rate": 0.02,
                "momentum": 0.9,
                "weight_decay": 1e-6,
                "schedule": "cosine",
                "milestones": (),
                "decay": 1.0,
                "image_size": 224,
                "crop_scale": (0.08, 1.0),
                "crop_ratio": (3.0 / 4.0, 4.0 / 3.0),
                "test_resize": (8, 7),
                "source": "linear_eval.py",
            }
        ),
    }
)


def _optional_positive_int(name, value):
    return None if value is None else _checks.check_positive_int(name, value)


def protocol_settings(
    protocol="cifar10", epochs=None, batch_size=None, image_size=None
):
    """The settings of a published protocol, with any overrides applied.

    A shorter run keeps the shape of the schedule: the step milestones move to
    the same fractions of `epochs` (60 and 80 of 100 become 3 and 4 of 5), and
    the cosine spans `epochs`. The learning rate does not scale with
    `batch_size`, as in the published code.

    Args:
        protocol: `"cifar10"` or `"imagenet"`. Defaults to `"cifar10"`.
        epochs: Epochs, or `None` for the published 100. Defaults to `None`.
        batch_size: Batch size, or `None` for the published 256. Defaults to
            `None`.
        image_size: Side of the crops, or `None` for the published 32 or 224.
            Defaults to `None`.

    Returns:
        A dict of the effective settings (JSON-ready: lists, not tuples), with
        `protocol` and `test_resize` (the side images are resized to before the
        centre crop) added.

    Example:

    ```python
    keras_imsvd.evaluation.protocol_settings("cifar10", epochs=5)["milestones"]
    # [3, 4]
    ```
    """
    if protocol not in PUBLISHED_PROTOCOLS:
        raise ValueError(
            f"protocol must be one of {', '.join(PUBLISHED_PROTOCOLS)}. "
            f"Received: protocol={protocol!r}"
        )
    published = PUBLISHED_PROTOCOLS[protocol]
    settings = {"protocol": protocol, **published}
    overrides = {"epochs": epochs, "batch_size": batch_size, "image_size": image_size}
    for name, value in overrides.items():
        if _optional_positive_int(name, value) is not None:
            settings[name] = int(value)
    settings["milestones"] = [
        max(1, m * settings["epochs"] // published["epochs"])
        for m in published["milestones"]
    ]
    numerator, denominator = published["test_resize"]
    settings["test_resize"] = settings["image_size"] * numerator // denominator
    settings["crop_scale"] = list(published["crop_scale"])
    settings["crop_ratio"] = list(published["crop_ratio"])
    return settings


def published_learning_rate(protocol, epoch, epochs=None):
    """The learning rate of epoch `epoch` (from 0) under a published protocol.

    CIFAR-10: `30 * 0.1 ** (number of milestones <= epoch)`, milestones 60 and
    80 of 100 epochs. ImageNet: `0.02 * (1 + cos(pi * epoch / epochs)) / 2`,
    `torch.optim.lr_scheduler.CosineAnnealingLR` stepped once per epoch. The
    rate is constant within an epoch.

    Args:
        protocol: `"cifar10"` or `"imagenet"`. Required.
        epoch: Epoch index in `[0, epochs)`. Required.
        epochs: Length of the run, or `None` for the published 100. Defaults to
            `None`.

    Returns:
        The learning rate, a float.

    Example:

    ```python
    keras_imsvd.evaluation.published_learning_rate("cifar10", 60)  # 3.0
    ```
    """
    settings = protocol_settings(protocol, epochs=epochs)
    return _learning_rate(settings, epoch)


def _learning_rate(settings, epoch):
    epochs = settings["epochs"]
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
        raise TypeError(f"epoch must be an integer. Received: epoch={epoch!r}")
    if not 0 <= epoch < epochs:
        raise ValueError(
            f"epoch must be in [0, {epochs}). Received: epoch={epoch}, epochs={epochs}"
        )
    base = settings["learning_rate"]
    if settings["schedule"] == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    passed = sum(epoch >= milestone for milestone in settings["milestones"])
    return base * settings["decay"] ** passed


def _is_files(images):
    """Whether `images` are read from disk: a `TFRecordImages`, or a sequence
    of file paths (its first element is one)."""
    return isinstance(images, TFRecordImages) or (
        isinstance(images, (list, tuple))
        and len(images) > 0
        and isinstance(images[0], (str, os.PathLike))
    )


def _from_disk(images):
    return not isinstance(images, np.ndarray)


def _check_data(name, data):
    """`(images, labels)`: images an array, a list of file paths (str) or a
    `TFRecordImages`."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            f"{name} must be a pair (images, labels) or (files, labels). "
            f"Received: {name} of type {type(data).__name__}"
        )
    if _is_files(data[0]):
        return _check_files(name, data)
    images = np.asarray(data[0])
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"{name} images must be a non-empty (N, H, W, C) array. "
            f"Received: shape {images.shape}"
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise TypeError(
            f"{name} images must be uint8 (0-255) or float in [0, 1]. "
            f"Received: dtype {images.dtype}"
        )
    labels = _checks.check_labels(f"{name} labels", data[1], len(images), "images")
    return images, labels


def _check_files(name, data):
    if isinstance(data[0], TFRecordImages):
        records, labels = data
        labels = records.read_labels() if labels is None else labels
        return records, _checks.check_labels(
            f"{name} labels", labels, len(records), "records"
        )
    files = []
    for file in data[0]:
        if not isinstance(file, (str, os.PathLike)):
            raise TypeError(
                f"{name} files must all be str or os.PathLike paths. Received: {file!r}"
            )
        files.append(os.fspath(file))
    labels = _checks.check_labels(f"{name} labels", data[1], len(files), "files")
    return files, labels


def _channels(images):
    return 3 if _from_disk(images) else images.shape[-1]


def _training_batches(images, labels, batch_size, crop, seed):
    """A function from the epoch to its batches, and the `StreamingViews` of
    the files (`None` for arrays)."""
    if _from_disk(images):
        stream, batches = _image_batches.file_training_batches(
            images, labels, batch_size, crop, seed
        )
        return batches, stream
    dataset = _image_batches.training_batches(images, labels, batch_size, crop, seed)
    return (lambda epoch: dataset), None


def _test_batches(images, labels, settings):
    if _from_disk(images):
        build = _image_batches.file_test_batches
    else:
        build = _image_batches.test_batches
    size, resize = settings["image_size"], settings["test_resize"]
    batches = build(images, labels, settings["batch_size"], size, resize)
    first = next(batches.as_numpy_iterator(), None)
    if first is None:
        raise ValueError(
            f"test_data holds no readable image. Received: {len(images)} files"
        )
    return batches, first[0]


def _feature_function(encoder):
    """A function from a NumPy batch to float32 `(N, F)` features, in inference
    mode (BatchNorm uses its moving statistics, which stay unchanged)."""
    if hasattr(encoder, "embed") and isinstance(
        getattr(encoder, "encoder", None), keras.Model
    ):
        encoder = encoder.encoder  # an IMSVDModel: its backbone
    if hasattr(encoder, "predict_on_batch"):
        call = encoder.predict_on_batch
    elif hasattr(encoder, "predict"):

        def call(images):
            return encoder.predict(images, batch_size=len(images), verbose=0)

    elif callable(encoder):
        call = encoder
    else:
        raise TypeError(
            f"encoder must be a model or a callable. Received: encoder={encoder!r}"
        )

    def features(images):
        out = np.asarray(keras.ops.convert_to_numpy(call(images)), dtype="float32")
        out = out.reshape(len(out), -1)
        if not np.all(np.isfinite(out)):
            raise ValueError("The encoder gave non-finite features.")
        return out

    return features


def _classifier(num_features, num_classes, settings, seed):
    """`torch.nn.Linear` as the published scripts initialise it, and their SGD."""
    from keras_imsvd.optimizers import TorchSGD

    inputs = keras.Input((num_features,), dtype="float32")
    outputs = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01, seed=seed),
        dtype="float32",
    )(inputs)
    model = keras.Model(inputs, outputs, name="linear_classifier")
    model.compile(
        optimizer=TorchSGD(
            settings["learning_rate"],
            momentum=settings["momentum"],
            weight_decay=settings["weight_decay"],
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def _test_accuracy(classifier, features, batches, num_classes):
    """Top-1 and top-5 accuracy (top-5 `None` below 6 classes), and the number
    of test images (padding left out)."""
    top1 = top5 = total = 0
    for images, labels in batches.as_numpy_iterator():
        logits = keras.ops.convert_to_numpy(
            classifier.predict_on_batch(features(images))
        )
        keep = labels >= 0  # padding is labelled -1
        best = np.argsort(-logits[keep], axis=1)[:, :5]
        top1 += int(np.sum(best[:, 0] == labels[keep]))
        top5 += int(np.sum(np.any(best == labels[keep, None], axis=1)))
        total += int(np.sum(keep))
    return top1 / total, (top5 / total if num_classes > 5 else None), total


def _train_epoch(classifier, features, batches, progress):
    """One pass; returns the mean loss and accuracy over its batches."""
    sums, step = np.zeros(2), 0
    for step, (images, labels) in enumerate(batches.as_numpy_iterator(), start=1):
        logs = classifier.train_on_batch(features(images), labels, return_dict=True)
        values = np.array([float(logs["loss"]), float(logs["accuracy"])])
        sums += values
        if progress is not None:
            progress.update(step, [("loss", values[0]), ("accuracy", values[1])])
    if step == 0:
        raise ValueError(
            "train_data gave no full batch of readable images; lower batch_size "
            "or remove the unreadable files"
        )
    return sums / step


def _check_options(evaluate_every_epoch, seed, verbose):
    if not isinstance(evaluate_every_epoch, bool):
        raise TypeError(
            "evaluate_every_epoch must be a bool. "
            f"Received: evaluate_every_epoch={evaluate_every_epoch!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer. Received: seed={seed!r}")
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1 or 2. Received: verbose={verbose!r}")


def linear_evaluation(
    encoder,
    train_data,
    test_data,
    protocol="cifar10",
    epochs=None,
    batch_size=None,
    image_size=None,
    num_classes=None,
    evaluate_every_epoch=False,
    seed=0,
    verbose=0,
):
    """Trains a linear classifier on a frozen encoder as the published code does.

    Each epoch, every training image is augmented anew (`RandomResizedCrop`
    and a horizontal flip), goes through the encoder in inference mode
    (BatchNorm uses its moving statistics; no weight of the encoder changes),
    and a linear layer on the features takes an SGD step. Test images are
    resized to 8/7 of the crop size (bicubic) and centre-cropped. Memory stays
    at a batch of images and features; nothing is precomputed.

    Images can also be given as files (or TFRecords), as an ImageNet-size
    folder must be: each epoch then reads every training file again
    (`keras_imsvd.data.StreamingViews` with the crop as its one view, so only
    the crop window of a JPEG is decoded, at full resolution, as torchvision's
    `RandomResizedCrop` crops the full image), and the test files are read in
    order (`keras_imsvd.data.streaming_images`). Memory holds a few batches
    whatever the number of files. Unreadable files are skipped and counted
    (`skipped_files`).

    | | `"cifar10"` | `"imagenet"` |
    |---|---|---|
    | epochs, batch | 100, 256 | 100, 256 |
    | SGD | lr 30, momentum 0.9, no weight decay | lr 0.02, momentum 0.9, L2 1e-6 |
    | schedule (per epoch) | x0.1 at epochs 60 and 80 | cosine to 0 |
    | training images | crop 32, scale 0.8-1, flip | crop 224, scale 0.08-1, flip |
    | test images | resize 36, centre 32 | resize 256, centre 224 |

    Sources: `linear_eval_cifar.py` and `linear_eval.py` of the published
    code. Differences: the training crops are resampled bilinearly (the
    CIFAR-10 script resamples bicubically), the test set is evaluated whole
    (the CIFAR-10 script drops its last partial batch), and the published
    scripts report the best test accuracy over the epochs (here `best_top1`
    with `evaluate_every_epoch=True`).

    Cost: `epochs` passes of the encoder over the training images, plus one
    over the test images (one per epoch with `evaluate_every_epoch`). On two
    CPU cores a CIFAR ResNet-18 encodes about 100 images per second; an
    accelerator is needed for the published length. From files, each epoch
    also decodes every training file's crop window: on two CPU cores, 200-270
    crops of 224 px per second from 400 x 350 JPEGs.

    Args:
        encoder: A `keras.Model` from images to features (an `IMSVDModel` is
            read through its `encoder`), or a callable from a NumPy batch to
            features. Required.
        train_data: `(images, labels)`: uint8 or float `[0, 1]` images
            `(N, H, W, C)` and integer labels `(N,)`; or `(files, labels)`: a
            list or tuple of `N` image file paths (str or `os.PathLike`; JPEG,
            PNG, GIF or BMP, decoded to RGB) and their integer labels `(N,)`,
            read a batch at a time; or `(records, labels)`: a
            `keras_imsvd.data.TFRecordImages` and `None` to read its labels
            (one pass over the records) or the labels `records.read_labels()`
            gives. Required.
        test_data: `(images, labels)` or `(files, labels)`, in the same
            forms. Required.
        protocol: `"cifar10"` or `"imagenet"`. Defaults to `"cifar10"`.
        epochs: Epochs, or `None` for the published 100; the schedule keeps
            its shape. Defaults to `None`.
        batch_size: Batch size, or `None` for the published 256; clipped to
            `N`. Defaults to `None`.
        image_size: Side of the crops fed to the encoder, or `None` for the
            published 32 or 224. Defaults to `None`.
        num_classes: Number of classes, or `None` to infer it from the labels.
            Defaults to `None`.
        evaluate_every_epoch: Also test after every epoch, as the published
            scripts do. Defaults to `False`.
        seed: Seed of the crops, the order of the images and the initial
            weights. Defaults to `0`.
        verbose: `0` silent, `1` a progress bar per epoch, `2` a line per
            epoch. Defaults to `0`.

    Returns:
        A dict with `top1` and `top5` (test accuracy after the last epoch;
        `top5` is `None` below 6 classes), `train_top1` (accuracy over the
        augmented batches of the last epoch), `history` (`loss`, `accuracy`,
        `learning_rate` per epoch), `settings` (the effective settings, see
        `protocol_settings`), `seconds`, `model` (the trained classifier,
        from features to logits), and `skipped_files`: `{"train", "test"}`,
        the unreadable files left out (0 for arrays); `"test"` is the number
        of test files less the images tested, `"train"` the most met in one
        epoch (an epoch stops reading after its last full batch, so a file
        after it is not read). With `evaluate_every_epoch`, also
        `test_history` (`top1`, `top5` per epoch), `best_top1` and `best_top5`.

    Example:

    ```python
    result = keras_imsvd.evaluation.linear_evaluation(
        model.encoder, (x_train, y_train), (x_test, y_test), protocol="cifar10"
    )
    print(result["top1"], result["top5"])
    # From files, a batch at a time: ImageNet's train/ and val/ folders.
    train = keras_imsvd.data.list_image_files("imagenet", "train")[:2]
    test = keras_imsvd.data.list_image_files("imagenet", "val")[:2]
    result = keras_imsvd.evaluation.linear_evaluation(
        model.encoder, train, test, protocol="imagenet"
    )
    ```

    References:
        - Niu, Xia, Shan, Wang, "Information-Maximized Soft Variable
          Discretization for Self-Supervised Image Representation Learning",
          2025. https://arxiv.org/abs/2501.03469
    """
    settings = protocol_settings(protocol, epochs, batch_size, image_size)
    x_train, y_train = _check_data("train_data", train_data)
    x_test, y_test = _check_data("test_data", test_data)
    if _channels(x_train) != _channels(x_test):
        raise ValueError(
            "train_data and test_data images must have the same channels (files "
            f"decode to 3). Received: {_channels(x_train)} and {_channels(x_test)}"
        )
    num_classes = _checks.check_num_classes(num_classes, y_train, y_test)
    _check_options(evaluate_every_epoch, seed, verbose)
    features = _feature_function(encoder)
    started = time.time()
    size = settings["image_size"]
    settings["batch_size"] = min(settings["batch_size"], len(x_train))
    crop = augment.RandomResizedCrop(
        size,
        size,
        scale=tuple(settings["crop_scale"]),
        ratio=tuple(settings["crop_ratio"]),
        horizontal_flip=True,
        seed=seed,
    )
    train_batches, stream = _training_batches(
        x_train, y_train, settings["batch_size"], crop, seed
    )
    test_batches, first = _test_batches(x_test, y_test, settings)
    classifier = _classifier(features(first).shape[1], num_classes, settings, seed)
    history = {"loss": [], "accuracy": [], "learning_rate": []}
    tests, skipped = [], 0
    for epoch in range(settings["epochs"]):
        rate = _learning_rate(settings, epoch)
        classifier.optimizer.learning_rate = rate
        progress = None
        if verbose:
            print(f"Epoch {epoch + 1}/{settings['epochs']} (learning rate {rate:.4g})")
            progress = keras.utils.Progbar(
                len(x_train) // settings["batch_size"], verbose=verbose
            )
        before = 0 if stream is None else stream.skipped
        batches = train_batches(epoch)
        loss, accuracy = _train_epoch(classifier, features, batches, progress)
        if stream is not None:
            skipped = max(skipped, stream.skipped - before)
        for key, value in zip(history, (loss, accuracy, rate)):
            history[key].append(float(value))
        if evaluate_every_epoch:
            tests.append(
                _test_accuracy(classifier, features, test_batches, num_classes)
            )
    if not evaluate_every_epoch:
        tests.append(_test_accuracy(classifier, features, test_batches, num_classes))
    result = {
        "top1": tests[-1][0],
        "top5": tests[-1][1],
        "train_top1": history["accuracy"][-1],
        "history": history,
        "settings": settings,
        "seconds": round(time.time() - started, 1),
        "model": classifier,
        "skipped_files": {"train": skipped, "test": len(x_test) - tests[-1][2]},
    }
    if verbose and (stream is not None or _from_disk(x_test)):
        print(
            "Unreadable image files skipped: {train} training (most in one "
            "epoch), {test} test".format(**result["skipped_files"])
        )
    if evaluate_every_epoch:
        result["test_history"] = {
            "top1": [t[0] for t in tests],
            "top5": [t[1] for t in tests],
        }
        result["best_top1"] = max(t[0] for t in tests)
        result["best_top5"] = None if tests[0][1] is None else max(t[1] for t in tests)
    return result
