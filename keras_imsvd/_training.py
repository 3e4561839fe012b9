"""The pretrain-then-evaluate job behind `train.py` (see `keras_imsvd.cli`)."""

import csv
import json
import os
import time

import keras
import numpy as np

import keras_imsvd
from keras_imsvd import augment
from keras_imsvd import data as data_lib
from keras_imsvd import evaluation
from keras_imsvd.cli import UsageError
from keras_imsvd.cli import write_output_dir

_LABELS_PER_CLASS = 10


class _Setup:
    """Converts bad-input errors raised while setting up into `UsageError`s."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is not None and issubclass(
            kind,
            (ValueError, TypeError, ImportError, FileNotFoundError, NotADirectoryError),
        ):
            raise UsageError(str(error)) from error
        return False


def _log(message):
    print(f"[train.py] {message}", flush=True)


def _policy(name):
    if name != "auto":
        return name
    gpus = [d for d in keras.distribution.list_devices() if "gpu" in d.lower()]
    return "mixed_float16" if gpus else "mixed_bfloat16"


def load_data(config):
    """Training and held-out images (float32 in [0, 1]) with their labels."""
    seed = config["seed"]
    size = config["validation_size"]
    if config["data_dir"]:
        # Evaluation needs the images in memory: uint8 keeps that at 1 byte per
        # value. For ImageNet-scale folders, use --limit.
        (x_train, y_train), (x_test, y_test) = data_lib.load_image_folder(
            config["data_dir"],
            image_size=config["image_size"],
            validation_split=size,
            seed=seed,
            dtype="uint8",
        )
    elif config["dataset"] == "digits":
        (x_train, y_train), (x_test, y_test) = data_lib.load_digits_split(
            test_size=size, seed=seed
        )
    elif config["dataset"] == "cifar10":
        (x_train, y_train), (x_test, y_test) = data_lib.load_cifar10_folder(
            validation_split=size, seed=seed
        )
    else:
        images, labels = data_lib.evaluation_arrays(
            config["dataset"], image_size=config["image_size"], split="train"
        )
        (x_train, y_train), (x_test, y_test) = data_lib.train_validation_split(
            images, labels, validation_split=size, seed=seed
        )
    if config["limit"] is not None:
        x_train, y_train = x_train[: config["limit"]], y_train[: config["limit"]]
    return x_train, y_train, x_test, y_test


def make_views(config, channels):
    seed = config["seed"]
    size = config["image_size"]
    if config["views"] == "digits":
        return augment.digits_views(size, seed=seed)
    if channels != 3:
        raise UsageError(
            f"--views {config['views']} needs RGB images. Received: images with "
            f"{channels} channel(s)"
        )
    if config["views"] == "cifar":
        return augment.cifar_views(size, seed=seed)
    return augment.imagenet_views(size, seed=seed)


def build_encoder(arch, image_shape):
    if arch == "small_convnet":
        return keras_imsvd.backbones.small_convnet(input_shape=image_shape)
    if arch == "resnet18_cifar":
        return keras_imsvd.backbones.resnet18_cifar(input_shape=image_shape)
    return keras_imsvd.backbones.resnet50(input_shape=image_shape)


def make_optimizer(config, steps_per_epoch):
    schedule = keras_imsvd.optimizers.published_schedule(
        config["base_lr"],
        batch_size=config["batch_size"],
        steps_per_epoch=steps_per_epoch,
        epochs=config["epochs"],
        warmup_epochs=config["warmup_epochs"],
    )
    if config["optimizer"] == "lars":
        return keras_imsvd.optimizers.LARS(
            learning_rate=schedule, momentum=0.9, weight_decay=config["wd"]
        )
    # Keras' SGD applies its weight decay to the weights directly (decoupled),
    # where torch.optim.SGD adds it to the gradient before the momentum.
    return keras.optimizers.SGD(
        learning_rate=schedule, momentum=0.9, weight_decay=config["wd"]
    )


def resize(images, image_size, batch_size=512):
    """Float32 images in [0, 1] at `image_size` (bilinear), as the views see them."""
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    if images.shape[1] == image_size and images.shape[2] == image_size:
        return images.astype("float32") / scale
    out = [
        keras.ops.convert_to_numpy(
            keras.ops.image.resize(
                images[i : i + batch_size].astype("float32") / scale,
                (image_size, image_size),
            )
        )
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out).astype("float32")


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the whole model each epoch, atomically, keeping the last few."""

    def __init__(self, directory, keep=3):
        super().__init__()
        self.directory = directory
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"epoch_{epoch + 1:04d}.keras")
        partial = path + ".partial.keras"
        self.model.save(partial)
        os.replace(partial, path)
        saved = sorted(
            f
            for f in os.listdir(self.directory)
            if f.startswith("epoch_") and f.endswith(".keras") and "partial" not in f
        )
        for old in saved[: -self.keep]:
            os.remove(os.path.join(self.directory, old))


def _truncate_history(path, initial_epoch):
    """Drops rows of epochs that a resumed run will train again."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < initial_epoch]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(kept)


def read_history(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    history = {}
    for row in rows:
        for key, value in row.items():
            if value not in ("", None):
                history.setdefault(key, []).append(float(value))
    return history


def plot_history(history, path, bin_size=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [
        ("loss", "total loss L"),
        ("invariance_loss", "invariance L_inv"),
        ("diagonal_loss", "diagonal L_dia"),
        ("off_diagonal_loss", "off-block L_off"),
    ]
    has_knn = "val_knn_accuracy" in history
    fig, axes = plt.subplots(
        1, 5 if has_knn else 4, figsize=(18 if has_knn else 15, 3.4)
    )
    epochs = np.asarray(history.get("epoch", range(len(history["loss"])))) + 1
    # Lower bounds of each term (DESIGN.md section 1): 0, -log b, -2 log b.
    bounds = {"loss": 3, "invariance_loss": 0, "diagonal_loss": 1}
    bounds["off_diagonal_loss"] = 2
    for ax, (key, title) in zip(axes, names):
        ax.plot(epochs[: len(history[key])], history[key], color="tab:blue")
        if bin_size is not None:
            bound = -bounds[key] * np.log(bin_size)
            ax.axhline(bound, color="gray", linestyle="--", linewidth=1)
            ax.annotate(
                "bound" if key == "invariance_loss" else f"-{bounds[key]} log b",
                (1, bound),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=8,
                color="gray",
            )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    if has_knn:
        ax = axes[-1]
        knn = np.asarray(history["val_knn_accuracy"])
        done = np.isfinite(knn)
        ax.plot(epochs[: len(knn)][done], knn[done], color="tab:green", marker="o")
        ax.set_title("validation kNN accuracy")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _few_labels(labels, per_class, seed):
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False)
        for c in np.unique(labels)
        if np.sum(labels == c) >= per_class
    ]
    return np.sort(np.concatenate(picks))


def evaluate_features(train, y_train, test, y_test, config):
    few = _few_labels(y_train, _LABELS_PER_CLASS, config["seed"])
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
            epochs=config["probe_epochs"],
            num_classes=num_classes,
            seed=config["seed"],
        )["accuracy"],
        f"linear_probe_{_LABELS_PER_CLASS}_per_class": evaluation.linear_probe(
            train[few],
            y_train[few],
            test,
            y_test,
            epochs=config["probe_epochs"],
            num_classes=num_classes,
            seed=config["seed"],
        )["accuracy"],
    }
    return {key: float(value) for key, value in result.items()}


def format_table(results):
    columns = list(next(iter(results.values())))
    header = f"{'features':<22}" + "".join(f"{c:>26}" for c in columns)
    lines = [header, "-" * len(header)]
    for name, row in results.items():
        lines.append(f"{name:<22}" + "".join(f"{row[c]:>26.4f}" for c in columns))
    return "\n".join(lines)


def run(config):
    import contextlib

    with contextlib.ExitStack() as stack:
        scope = None
        if config["distribute"] == "data-parallel":
            from keras_imsvd import distribute

            scope = stack.enter_context(distribute.data_parallel())
        return _run(config, scope)


def _run(config, scope):
    output_dir = config["output_dir"]
    started = time.time()
    keras.utils.set_random_seed(config["seed"])
    if config["mixed_precision"]:
        keras.config.set_dtype_policy(_policy(config["mixed_precision"]))
    with _Setup():
        x_train, y_train, x_test, y_test = load_data(config)
        image_size = config["image_size"]
        channels = x_train.shape[-1]
        views = make_views(config, channels)
        dataset = data_lib.multiview_dataset(
            x_train,
            views=views,
            batch_size=config["batch_size"],
            seed=config["seed"],
        )
        if scope is not None:
            dataset = scope.distribute_dataset(dataset)
    steps_per_epoch = len(x_train) // config["batch_size"]
    if steps_per_epoch < 1:
        raise UsageError(
            f"--batch-size {config['batch_size']} is larger than the training set "
            f"({len(x_train)} images)"
        )
    image_shape = (image_size, image_size, channels)
    _log(
        f"backend {keras.backend.backend()}: {len(x_train)} training and "
        f"{len(x_test)} held-out images of shape {image_shape}, "
        f"{steps_per_epoch} steps per epoch"
    )
    train_eval = resize(x_train, image_size)
    test_eval = resize(x_test, image_size)

    with _Setup():
        model = keras_imsvd.IMSVDModel(
            build_encoder(config["arch"], image_shape),
            projector=config["mlp"],
            bin_size=config["bin_size"],
            temperature=config["t"],
            invariance_weight=config["ti_coeff"],
            diagonal_weight=config["dia_coeff"],
            off_diagonal_weight=config["off_coeff"],
        )
        model.build({"view_1": (None, *image_shape), "view_2": (None, *image_shape)})
        model.compile(optimizer=make_optimizer(config, steps_per_epoch))
    write_output_dir(config)

    history_path = os.path.join(output_dir, "history.csv")
    backup = keras.callbacks.BackupAndRestore(
        os.path.join(output_dir, "backup"),
        double_checkpoint=True,
        delete_checkpoint=False,
    )
    if config["resume"]:
        metadata = os.path.join(output_dir, "backup", "training_metadata.json")
        initial_epoch = 0
        if os.path.exists(metadata):
            with open(metadata) as f:
                initial_epoch = json.load(f)["epoch"]
        _truncate_history(history_path, initial_epoch)
        _log(f"resuming after epoch {initial_epoch}")
    monitor_train = min(len(train_eval), 10_000)
    # The backup goes last: when it records an epoch as done, that epoch's
    # history row and checkpoint are already on disk.
    callbacks = [
        evaluation.KNNMonitor(
            (train_eval[:monitor_train], y_train[:monitor_train]),
            (test_eval, y_test),
            every=config["eval_every"],
        ),
        keras.callbacks.CSVLogger(history_path, append=config["resume"]),
        keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")),
        EpochCheckpoint(os.path.join(output_dir, "checkpoints")),
        keras.callbacks.TerminateOnNaN(),
        backup,
    ]
    if scope is not None:
        from keras_imsvd import distribute

        callbacks.insert(0, distribute.SynchronizeReplicas())
    verbose = config["verbose"] if config["verbose"] is not None else 2
    model.fit(
        dataset,
        epochs=config["epochs"],
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    train_seconds = time.time() - started

    model.save(os.path.join(output_dir, "model.keras"))
    model.encoder.save(os.path.join(output_dir, "encoder.keras"))
    history = read_history(history_path)
    plot_history(
        history, os.path.join(output_dir, "loss_curves.png"), config["bin_size"]
    )

    _log("evaluating: kNN (k=20, T=0.07) and linear probes on held-out images")
    keras.utils.set_random_seed(config["seed"] + 1)
    random_encoder = build_encoder(config["arch"], image_shape)
    features = {
        "IMSVD (learned)": (model.embed(train_eval), model.embed(test_eval)),
        "random init": (
            random_encoder.predict(train_eval, verbose=0, batch_size=256),
            random_encoder.predict(test_eval, verbose=0, batch_size=256),
        ),
        "raw pixels": (
            x_train.reshape(len(x_train), -1).astype("float32"),
            x_test.reshape(len(x_test), -1).astype("float32"),
        ),
    }
    results = {
        name: evaluate_features(train, y_train, test, y_test, config)
        for name, (train, test) in features.items()
    }
    table = format_table(results)
    print(table, flush=True)
    metrics = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "config": run_config_for_metrics(config),
        "results": results,
        "final_loss": {k: history[k][-1] for k in history if k.endswith("loss")},
        "epochs_trained": len(history.get("loss", [])),
        "seconds": round(time.time() - started, 1),
        "train_seconds": round(train_seconds, 1),
    }
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    with open(os.path.join(output_dir, "results.txt"), "w") as f:
        f.write(table + "\n")
    if config["explain"]:
        from keras_imsvd import explain

        _log("writing explainability figures and explain.json")
        keras.utils.set_random_seed(config["seed"] + 1)
        untrained = keras_imsvd.IMSVDModel(
            build_encoder(config["arch"], image_shape),
            projector=config["mlp"],
            bin_size=config["bin_size"],
            temperature=config["t"],
        )
        held_out_views = data_lib.multiview_dataset(
            x_test,
            views=views,
            batch_size=min(256, len(x_test)),
            shuffle=False,
            seed=config["seed"],
            drop_remainder=False,
        )
        explain.save_explain_report(
            model,
            test_eval,
            y_test,
            multiview_ds=held_out_views,
            output_dir=output_dir,
            reference=untrained,
        )
    _log(f"done in {metrics['seconds']} s; outputs in {output_dir}")
    return metrics


def run_config_for_metrics(config):
    from keras_imsvd.cli import run_config

    return run_config(config)
