"""CIFAR-10 accuracy: IMSVD beside Barlow Twins and VICReg at equal budget.

All three objectives pretrain the same encoder, with the same projector widths,
views (`keras_imsvd.augment.cifar_views`), optimizer, schedule, epochs, batch
size and seed, on the 45,000 training images of the shared CIFAR-10 archive
(`keras_imsvd.data.load_cifar10_folder`); the 5,000 held-out images are the
validation set. Each encoder is then evaluated on frozen features by weighted
kNN (k=20, T=0.07, cosine) and by a linear probe, beside a random-init encoder.
The validation kNN accuracy is measured after every epoch and plotted.

Usage:

    KERAS_BACKEND=tensorflow python benchmarks/cifar10_accuracy.py --quick
    KERAS_BACKEND=tensorflow nohup python benchmarks/cifar10_accuracy.py \\
        > benchmarks/results/cifar10_accuracy.log 2>&1 &
"""

import argparse
import json
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_OBJECTIVES = ("imsvd", "barlow_twins", "vicreg")
_LABELS = {"imsvd": "IMSVD", "barlow_twins": "Barlow Twins", "vicreg": "VICReg"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny run (1,024 images, 1 epoch, 1,000-image evaluation sets)",
    )
    parser.add_argument("--objectives", default=",".join(_OBJECTIVES))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--train-subset",
        type=int,
        default=12_800,
        help="pretrain on the first N of the 45,000 training images (0: all)",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--encoder",
        default="convnet",
        choices=("convnet", "resnet18_w16"),
        help="convnet: small_convnet(widths=(32, 64, 128)) at 32x32; "
        "resnet18_w16: resnet18_cifar(width=16)",
    )
    parser.add_argument("--projector", default="1024-1024-1024")
    parser.add_argument("--bin-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument(
        "--base-lr", type=float, default=0.3, help="LARS lr for a batch of 256"
    )
    parser.add_argument("--eta", type=float, default=0.02, help="LARS trust coef.")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument(
        "--eval-train-size",
        type=int,
        default=10_000,
        help="labelled training images (the first N of the 45,000) that form the "
        "kNN memory bank and the linear probe's training set",
    )
    parser.add_argument(
        "--val-size", type=int, default=5_000, help="validation images used"
    )
    parser.add_argument("--probe-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output", default=os.path.join(_HERE, "results", "cifar10_accuracy")
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 1
        args.train_subset = 1024
        args.eval_train_size = 1000
        args.val_size = 1000
        args.probe_epochs = 2
        args.output = args.output + "_quick"
    args.objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    for objective in args.objectives:
        if objective not in _OBJECTIVES:
            parser.error(f"unknown objective {objective!r}; choose from {_OBJECTIVES}")
    return args


def build_encoder(name):
    import keras_imsvd

    if name == "convnet":
        return keras_imsvd.backbones.small_convnet(
            input_shape=(32, 32, 3), widths=(32, 64, 128)
        )
    return keras_imsvd.backbones.resnet18_cifar(width=16)


def build_model(objective, args):
    import keras_imsvd

    sys.path.insert(0, _HERE)
    import baselines

    encoder = build_encoder(args.encoder)
    if objective == "imsvd":
        model = keras_imsvd.IMSVDModel(
            encoder,
            projector=args.projector,
            bin_size=args.bin_size,
            temperature=args.temperature,
        )
    elif objective == "barlow_twins":
        model = baselines.BarlowTwinsModel(encoder, projector=args.projector)
    else:
        model = baselines.VICRegModel(encoder, projector=args.projector)
    shape = (None, 32, 32, 3)
    model.build({"view_1": shape, "view_2": shape})
    return model


def make_optimizer(args, steps_per_epoch):
    import keras_imsvd

    schedule = keras_imsvd.optimizers.published_schedule(
        args.base_lr,
        batch_size=args.batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=args.epochs,
        warmup_epochs=min(args.warmup_epochs, args.epochs / 2),
    )
    return keras_imsvd.optimizers.LARS(
        learning_rate=schedule,
        momentum=0.9,
        weight_decay=args.weight_decay,
        eta=args.eta,
    )


def eval_sets(data, args):
    """The labelled training subset and the validation images."""
    (x_train, y_train), (x_val, y_val) = data
    bank = args.eval_train_size
    return (x_train[:bank], y_train[:bank]), (
        x_val[: args.val_size],
        y_val[: args.val_size],
    )


def evaluate(encoder_features, data, args):
    """kNN and linear-probe validation accuracy of frozen features."""
    from keras_imsvd import evaluation

    (x_train, y_train), (x_val, y_val) = eval_sets(data, args)
    train = encoder_features(x_train)
    val = encoder_features(x_val)
    knn = evaluation.knn_classify(
        train, y_train, val, y_val, k=20, temperature=0.07, num_classes=10
    )
    probe = evaluation.linear_probe(
        train,
        y_train,
        val,
        y_val,
        epochs=args.probe_epochs,
        batch_size=256,
        num_classes=10,
        seed=args.seed,
    )
    return {"knn": float(knn), "linear_probe": float(probe["accuracy"])}


def pretrain(objective, data, args):
    import keras

    import keras_imsvd

    x_train = data[0][0]
    keras.utils.set_random_seed(args.seed)
    pretrain_images = x_train[: args.train_subset] if args.train_subset else x_train
    steps_per_epoch = len(pretrain_images) // args.batch_size
    dataset = keras_imsvd.data.multiview_dataset(
        pretrain_images,
        views=keras_imsvd.augment.cifar_views(32, seed=args.seed),
        batch_size=args.batch_size,
        seed=args.seed,
    )
    model = build_model(objective, args)
    model.compile(optimizer=make_optimizer(args, steps_per_epoch))
    monitor = keras_imsvd.evaluation.KNNMonitor(*eval_sets(data, args), every=1)
    epoch_times = []

    class _Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self.start)
            knn = (logs or {}).get("val_knn_accuracy", float("nan"))
            print(
                f"[{objective}] epoch {epoch + 1}/{args.epochs} "
                f"loss {logs.get('loss', float('nan')):.4f} kNN {knn:.4f} "
                f"({epoch_times[-1]:.0f} s incl. monitor)",
                flush=True,
            )

    started = time.perf_counter()
    history = model.fit(
        dataset, epochs=args.epochs, callbacks=[monitor, _Timer()], verbose=0
    )
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = evaluate(lambda x: model.embed(x, batch_size=512), data, args)
    return {
        "objective": objective,
        "val_knn_per_epoch": [float(v) for v in history.history["val_knn_accuracy"]],
        "loss_per_epoch": [float(v) for v in history.history["loss"]],
        "epoch_seconds": epoch_times,
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - started,
        "images_per_epoch": steps_per_epoch * args.batch_size,
        **scores,
    }


def random_init(data, args):
    import keras

    keras.utils.set_random_seed(args.seed + 1)
    encoder = build_encoder(args.encoder)
    scores = evaluate(
        lambda x: encoder.predict(x, batch_size=512, verbose=0), data, args
    )
    return {"objective": "random_init", **scores}


def plot(results, path, val_size):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for objective in _OBJECTIVES:
        if objective not in results:
            continue
        knn = results[objective]["val_knn_per_epoch"]
        ax.plot(range(1, len(knn) + 1), knn, marker="o", label=_LABELS[objective])
    if "random_init" in results:
        ax.axhline(
            results["random_init"]["knn"],
            color="gray",
            linestyle="--",
            label="random init",
        )
    epochs = max(
        (len(results[o]["val_knn_per_epoch"]) for o in _OBJECTIVES if o in results),
        default=1,
    )
    ax.set_xticks(range(1, epochs + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation kNN accuracy (k=20, T=0.07)")
    ax.set_title(f"CIFAR-10, {val_size:,} validation images")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import keras

    import keras_imsvd

    os.makedirs(args.output, exist_ok=True)
    data = keras_imsvd.data.load_cifar10_folder(seed=args.seed)
    results_path = os.path.join(args.output, "results.json")
    results = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "config": {k: v for k, v in vars(args).items() if k != "output"},
    }
    started = time.perf_counter()
    for objective in args.objectives:
        results[objective] = pretrain(objective, data, args)
        print(json.dumps({k: results[objective][k] for k in ("knn", "linear_probe")}))
        with open(results_path, "w") as f:
            json.dump(results, f, indent=2)
    results["random_init"] = random_init(data, args)
    results["total_seconds"] = time.perf_counter() - started
    with open(results_path, "w") as f:
        json.dump(results, f, indent=2)
    plot(results, os.path.join(args.output, "cifar10_knn.png"), args.val_size)
    print(f"{'objective':<14}{'kNN':>8}{'linear':>8}")
    for key in (*args.objectives, "random_init"):
        row = results[key]
        print(f"{key:<14}{row['knn']:>8.4f}{row['linear_probe']:>8.4f}")
    print(f"total {results['total_seconds']:.0f} s; results in {results_path}")


if __name__ == "__main__":
    main()
