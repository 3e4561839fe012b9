"""CIFAR-10 accuracy: IMSVD beside Barlow Twins and VICReg, each with its own recipe.

The three objectives pretrain the same encoder, with the same projector widths,
views (`keras_imsvd.augment.cifar_views`), epochs, batch size and images, on
the 45,000 training images of the shared CIFAR-10 archive
(`keras_imsvd.data.load_cifar10_folder`); the 5,000 held-out images are the
validation set. Each objective keeps the optimizer, learning rates, weight
decay and loss weights of its own official code (`RECIPES`), since one
learning rate for all would favour some objectives: the gradients that reach
1-D parameters differ 11-35x between them. Each encoder is then evaluated on
frozen features by weighted kNN (k=20, T=0.07, cosine) and by a linear probe,
beside a random-init encoder. The validation kNN accuracy is measured after
every epoch and plotted as the mean over the seeds, with a band of one
standard deviation.

Usage:

    KERAS_BACKEND=tensorflow python benchmarks/cifar10_accuracy.py --quick
    KERAS_BACKEND=tensorflow nohup python benchmarks/cifar10_accuracy.py \\
        --seeds 0,1,2 > benchmarks/results/cifar10_accuracy.log 2>&1 &
"""

import argparse
import json
import os
import statistics
import sys
import time
from types import MappingProxyType

_HERE = os.path.dirname(os.path.abspath(__file__))
_OBJECTIVES = ("imsvd", "barlow_twins", "vicreg")
_LABELS = {"imsvd": "IMSVD", "barlow_twins": "Barlow Twins", "vicreg": "VICReg"}

# Each objective's own published recipe, adapted to the shared budget (epochs,
# batch, encoder, projector widths and warm-up are the benchmark's). Learning
# rates are for a batch of 256 and scale linearly with the batch.
RECIPES = MappingProxyType(
    {
        # imsvd_cifar.py (arXiv:2501.03469): torch.optim.SGD, momentum 0.9,
        # lr 0.1 per 256, coupled weight decay 5e-4 on every parameter; t = 1.
        "imsvd": MappingProxyType(
            {
                "optimizer": "sgd",
                "base_learning_rate": 0.1,
                "weight_decay": 5e-4,
                "temperature": 1.0,
            }
        ),
        # Barlow Twins' main.py: LARS (eta 0.001, momentum 0.9) with weight
        # decay 1.5e-6, lr 0.2 per 256 for weights and 0.0048 (x 0.024) for
        # biases and BatchNorm parameters; lambda 0.0051.
        "barlow_twins": MappingProxyType(
            {
                "optimizer": "lars",
                "base_learning_rate": 0.2,
                "weight_decay": 1.5e-6,
                "eta": 0.001,
                "unadapted_learning_rate_scale": 0.0048 / 0.2,
            }
        ),
        # VICReg's main_vicreg.py: LARS (eta 0.001, momentum 0.9), weight decay
        # 1e-6, lr 0.2 per 256, biases and norms excluded; weights 25 / 25 / 1.
        "vicreg": MappingProxyType(
            {
                "optimizer": "lars",
                "base_learning_rate": 0.2,
                "weight_decay": 1e-6,
                "eta": 0.001,
                "unadapted_learning_rate_scale": 1.0,
            }
        ),
    }
)


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
    parser.add_argument(
        "--seeds", default="0", help="comma-separated seeds, one run per seed"
    )
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
    try:
        args.seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers: {args.seeds!r}")
    if not args.seeds:
        parser.error("--seeds names no seed")
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
            temperature=RECIPES["imsvd"]["temperature"],
        )
    elif objective == "barlow_twins":
        model = baselines.BarlowTwinsModel(encoder, projector=args.projector)
    else:
        model = baselines.VICRegModel(encoder, projector=args.projector)
    shape = (None, 32, 32, 3)
    model.build({"view_1": shape, "view_2": shape})
    return model


def _scaled_lars(scale):
    """LARS whose unadapted (1-D) variables step at `scale` times the rate.

    Those variables take plain momentum steps without weight decay, so
    scaling their gradient by `scale` is the same as scaling their learning
    rate, as Barlow Twins' parameter groups do.
    """
    from keras import ops

    from keras_imsvd.optimizers import LARS

    class ScaledLARS(LARS):
        def update_step(self, gradient, variable, learning_rate):
            if not self._is_adapted(variable):
                gradient = ops.multiply(gradient, ops.cast(scale, gradient.dtype))
            super().update_step(gradient, variable, learning_rate)

    return ScaledLARS


def make_optimizer(objective, args, steps_per_epoch):
    import keras_imsvd

    recipe = RECIPES[objective]
    schedule = keras_imsvd.optimizers.published_schedule(
        recipe["base_learning_rate"],
        batch_size=args.batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=args.epochs,
        warmup_epochs=min(args.warmup_epochs, args.epochs / 2),
    )
    if recipe["optimizer"] == "sgd":
        return keras_imsvd.optimizers.TorchSGD(
            learning_rate=schedule, momentum=0.9, weight_decay=recipe["weight_decay"]
        )
    return _scaled_lars(recipe["unadapted_learning_rate_scale"])(
        learning_rate=schedule,
        momentum=0.9,
        weight_decay=recipe["weight_decay"],
        eta=recipe["eta"],
    )


def eval_sets(data, args):
    """The labelled training subset and the validation images."""
    (x_train, y_train), (x_val, y_val) = data
    bank = args.eval_train_size
    return (x_train[:bank], y_train[:bank]), (
        x_val[: args.val_size],
        y_val[: args.val_size],
    )


def evaluate(encoder_features, data, args, seed):
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
        seed=seed,
    )
    return {"knn": float(knn), "linear_probe": float(probe["accuracy"])}


def pretrain(objective, data, args, seed):
    import keras

    import keras_imsvd

    x_train = data[0][0]
    keras.utils.set_random_seed(seed)
    pretrain_images = x_train[: args.train_subset] if args.train_subset else x_train
    steps_per_epoch = len(pretrain_images) // args.batch_size
    dataset = keras_imsvd.data.multiview_dataset(
        pretrain_images,
        views=keras_imsvd.augment.cifar_views(32, seed=seed),
        batch_size=args.batch_size,
        seed=seed,
    )
    model = build_model(objective, args)
    model.compile(optimizer=make_optimizer(objective, args, steps_per_epoch))
    monitor = keras_imsvd.evaluation.KNNMonitor(*eval_sets(data, args), every=1)
    epoch_times = []

    class _Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self.start)
            knn = (logs or {}).get("val_knn_accuracy", float("nan"))
            print(
                f"[{objective} seed {seed}] epoch {epoch + 1}/{args.epochs} "
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
    scores = evaluate(lambda x: model.embed(x, batch_size=512), data, args, seed)
    return {
        "objective": objective,
        "seed": seed,
        "val_knn_per_epoch": [float(v) for v in history.history["val_knn_accuracy"]],
        "loss_per_epoch": [float(v) for v in history.history["loss"]],
        "epoch_seconds": epoch_times,
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - started,
        "images_per_epoch": steps_per_epoch * args.batch_size,
        **scores,
    }


def random_init(data, args, seed):
    import keras

    keras.utils.set_random_seed(seed + 1)
    encoder = build_encoder(args.encoder)
    scores = evaluate(
        lambda x: encoder.predict(x, batch_size=512, verbose=0), data, args, seed
    )
    return {"objective": "random_init", "seed": seed, **scores}


def summarize(runs):
    """Mean and sample standard deviation of each score over the seeds."""
    summary = {}
    for key in ("knn", "linear_probe"):
        values = [run[key] for run in runs]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[key] = {"mean": statistics.fmean(values), "std": std}
    if "val_knn_per_epoch" in runs[0]:
        per_epoch = list(zip(*(run["val_knn_per_epoch"] for run in runs)))
        summary["val_knn_per_epoch"] = {
            "mean": [statistics.fmean(v) for v in per_epoch],
            "std": [statistics.stdev(v) if len(v) > 1 else 0.0 for v in per_epoch],
        }
    return summary


def plot(summaries, path, val_size, seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = 1
    for objective in _OBJECTIVES:
        if objective not in summaries:
            continue
        curve = summaries[objective]["val_knn_per_epoch"]
        mean, std = np.array(curve["mean"]), np.array(curve["std"])
        x = np.arange(1, len(mean) + 1)
        epochs = max(epochs, len(mean))
        (line,) = ax.plot(x, mean, marker="o", label=_LABELS[objective])
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    if "random_init" in summaries:
        ax.axhline(
            summaries["random_init"]["knn"]["mean"],
            color="gray",
            linestyle="--",
            label="random init",
        )
    ax.set_xticks(range(1, epochs + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation kNN accuracy (k=20, T=0.07)")
    ax.set_title(
        f"CIFAR-10, {val_size:,} validation images, mean $\\pm$ std of "
        f"{len(seeds)} seed(s)"
    )
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
    # The train/validation split is fixed (seed 0); the seeds vary the
    # initialisation, the views and the order of the images.
    data = keras_imsvd.data.load_cifar10_folder(seed=0)
    results_path = os.path.join(args.output, "results.json")
    results = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "config": {k: v for k, v in vars(args).items() if k != "output"},
        "recipes": {k: dict(v) for k, v in RECIPES.items()},
        "runs": {},
    }
    started = time.perf_counter()

    def save():
        with open(results_path, "w") as f:
            json.dump(results, f, indent=2)

    for seed in args.seeds:
        for objective in args.objectives:
            run = pretrain(objective, data, args, seed)
            results["runs"].setdefault(objective, []).append(run)
            print(json.dumps({k: run[k] for k in ("objective", "seed", "knn")}))
            save()
        results["runs"].setdefault("random_init", []).append(
            random_init(data, args, seed)
        )
        save()
    results["summary"] = {k: summarize(v) for k, v in results["runs"].items()}
    results["total_seconds"] = time.perf_counter() - started
    save()
    plot(
        results["summary"],
        os.path.join(args.output, "cifar10_knn.png"),
        args.val_size,
        args.seeds,
    )
    print(f"{'objective':<14}{'kNN':>18}{'linear':>18}")
    for key in (*args.objectives, "random_init"):
        row = results["summary"][key]
        cells = "".join(
            f"{row[m]['mean']:>11.4f} +- {row[m]['std']:.4f}"
            for m in ("knn", "linear_probe")
        )
        print(f"{key:<14}{cells}")
    print(f"total {results['total_seconds']:.0f} s; results in {results_path}")


if __name__ == "__main__":
    main()
