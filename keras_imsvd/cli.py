"""The training command: `python train.py` (any backend, set by KERAS_BACKEND).

Pretrains an `IMSVDModel` on a dataset, evaluates the encoder with weighted kNN
and a linear probe against a randomly initialised encoder of the same shape and
against raw pixels, and writes everything under `--output-dir`. Flags keep the
names of the published script (`--arch`, `--mlp`, `--bin-size`, `--base-lr`,
`--wd`, `--dia-coeff`, `--off-coeff`, `--ti-coeff`, `--t`, ...).
"""

import argparse
import json
import os
import sys

_PRESETS = {
    # Bundled scikit-learn digits: a three-block convnet and a 512-512
    # projector at b = 16, as in DESIGN.md section 4.
    "digits": {
        "arch": "small_convnet",
        "mlp": "512-512",
        "bin_size": 16,
        "epochs": 30,
        "batch_size": 128,
        "base_lr": 0.2,
        "optimizer": "sgd",
        "wd": 5e-4,
        "warmup_epochs": 2,
        "views": "digits",
        "image_size": 16,
        "eval_every": 5,
    },
    # The published CIFAR-10 recipe.
    "cifar10": {
        "arch": "resnet18_cifar",
        "mlp": "1024-1024-1024",
        "bin_size": 32,
        "epochs": 800,
        "batch_size": 512,
        "base_lr": 0.1,
        "optimizer": "sgd",
        "wd": 5e-4,
        "warmup_epochs": 10,
        "views": "cifar",
        "image_size": 32,
        "eval_every": 10,
    },
    # The published ImageNet recipe (for --data-dir and TFDS image datasets).
    "imagenet": {
        "arch": "resnet50",
        "mlp": "8192-8160",
        "bin_size": 80,
        "epochs": 100,
        "batch_size": 2048,
        "base_lr": 0.6,
        "optimizer": "lars",
        "wd": 1e-6,
        "warmup_epochs": 10,
        "views": "imagenet",
        "image_size": 224,
        "eval_every": 10,
    },
}
_ARCHS = ("small_convnet", "resnet18_cifar", "resnet50")
_RUN_KEYS = (
    "dataset",
    "data_dir",
    "arch",
    "mlp",
    "bin_size",
    "epochs",
    "batch_size",
    "base_lr",
    "wd",
    "dia_coeff",
    "off_coeff",
    "ti_coeff",
    "t",
    "image_size",
    "views",
    "optimizer",
    "warmup_epochs",
    "mixed_precision",
    "seed",
    "limit",
    "validation_size",
    "distribute",
)


class UsageError(Exception):
    """A problem with the command line or the data, reported without traceback."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="train.py",
        description=(
            "Pretrain an encoder with IMSVD, then evaluate it (kNN and linear "
            "probe) against a random-init encoder and raw pixels. With no flags, "
            "runs on the bundled scikit-learn digits in a few minutes. Choose the "
            "backend with KERAS_BACKEND=tensorflow|jax|torch."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default="digits",
        help="digits (bundled), cifar10 (../shared tarball, else TFDS), or any "
        "TFDS image dataset name",
    )
    data.add_argument(
        "--data-dir",
        default=None,
        help="image folder with one sub-folder per class (overrides --dataset)",
    )
    data.add_argument("--image-size", type=int, default=None, help="view size")
    data.add_argument("--views", choices=("digits", "cifar", "imagenet"), default=None)
    data.add_argument(
        "--validation-size",
        type=int,
        default=None,
        help="held-out images for evaluation (digits: 397, others: 5000)",
    )
    data.add_argument(
        "--limit", type=int, default=None, help="use only this many training images"
    )
    model = parser.add_argument_group("model")
    model.add_argument("--arch", default=None, help="|".join(_ARCHS))
    model.add_argument("--mlp", default=None, help="projector widths, e.g. 8192-8160")
    model.add_argument("--bin-size", type=int, default=None, help="bins per variable")
    model.add_argument("--t", type=float, default=1.0, help="softmax temperature")
    model.add_argument("--ti-coeff", type=float, default=1.0, help="invariance weight")
    model.add_argument("--dia-coeff", type=float, default=1.0, help="diagonal weight")
    model.add_argument("--off-coeff", type=float, default=1.0, help="off-block weight")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--batch-size", type=int, default=None, help="global batch")
    train.add_argument(
        "--base-lr", type=float, default=None, help="lr = base-lr x batch-size / 256"
    )
    train.add_argument("--wd", type=float, default=None, help="weight decay")
    train.add_argument("--optimizer", choices=("sgd", "lars"), default=None)
    train.add_argument("--warmup-epochs", type=float, default=None)
    train.add_argument(
        "--mixed-precision",
        nargs="?",
        const="auto",
        default=None,
        choices=("auto", "mixed_float16", "mixed_bfloat16"),
        help="compute in 16-bit (auto: float16 on GPU, bfloat16 on CPU); the "
        "loss stays float32",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--distribute",
        choices=("none", "data-parallel"),
        default="none",
        help="data-parallel: all local devices (JAX, TensorFlow) or torchrun ranks",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", default=None, help="default: runs/<dataset>")
    output.add_argument(
        "--eval-every", type=int, default=None, help="kNN monitor period in epochs"
    )
    output.add_argument(
        "--resume", action="store_true", help="continue the run in --output-dir"
    )
    output.add_argument(
        "--overwrite", action="store_true", help="replace the run in --output-dir"
    )
    output.add_argument(
        "--explain", action="store_true", help="write explainability figures"
    )
    output.add_argument(
        "--probe-epochs", type=int, default=100, help="linear-probe epochs"
    )
    output.add_argument("--verbose", type=int, default=None, help="fit verbosity")
    return parser


def resolve_config(args):
    """Fills the flags left unset from the preset of the dataset."""
    if args.data_dir:
        preset = "imagenet"
    elif args.dataset in _PRESETS:
        preset = args.dataset
    else:
        preset = "imagenet"
    config = dict(vars(args))
    warmup_given = config["warmup_epochs"] is not None
    for key, value in _PRESETS[preset].items():
        if config.get(key) is None:
            config[key] = value
    if not warmup_given and config["warmup_epochs"] >= config["epochs"]:
        # Short runs keep the shape of the schedule: a tenth of it warms up.
        config["warmup_epochs"] = config["epochs"] / 10
    if config["validation_size"] is None:
        config["validation_size"] = 397 if preset == "digits" else 5000
    if config["output_dir"] is None:
        name = "folder" if args.data_dir else args.dataset
        config["output_dir"] = os.path.join("runs", name)
    _validate(config)
    return config


def _validate(config):
    if config["arch"] not in _ARCHS:
        raise UsageError(
            f"unknown architecture: --arch {config['arch']!r} "
            f"(choose from {', '.join(_ARCHS)})"
        )
    if config["batch_size"] < 2:
        raise UsageError(
            "--batch-size must be at least 2: IMSVD estimates a joint distribution "
            f"over the batch. Received: --batch-size {config['batch_size']}"
        )
    for flag in ("epochs", "bin_size", "image_size", "probe_epochs"):
        if config[flag] < 1:
            raise UsageError(
                f"--{flag.replace('_', '-')} must be >= 1. Received: {config[flag]}"
            )
    for flag in ("base_lr", "t"):
        if config[flag] <= 0:
            raise UsageError(
                f"--{flag.replace('_', '-')} must be > 0. Received: {config[flag]}"
            )
    for flag in ("wd", "ti_coeff", "dia_coeff", "off_coeff", "warmup_epochs"):
        if config[flag] < 0:
            raise UsageError(
                f"--{flag.replace('_', '-')} must be >= 0. Received: {config[flag]}"
            )
    if config["warmup_epochs"] >= config["epochs"]:
        raise UsageError(
            "--warmup-epochs must be smaller than --epochs. Received: "
            f"--warmup-epochs {config['warmup_epochs']}, --epochs {config['epochs']}"
        )
    from keras_imsvd.models.projector import parse_projector_spec

    try:
        widths = parse_projector_spec(config["mlp"])
    except (TypeError, ValueError) as error:
        raise UsageError(f"--mlp: {error}") from None
    if widths[-1] % config["bin_size"]:
        raise UsageError(
            "--bin-size: bin_size must divide the embedding size (the last --mlp "
            f"width). Received: embedding_size={widths[-1]}, "
            f"bin_size={config['bin_size']}"
        )
    if config["limit"] is not None and config["limit"] < config["batch_size"]:
        raise UsageError(
            f"--limit must be at least --batch-size. Received: --limit "
            f"{config['limit']}, --batch-size {config['batch_size']}"
        )


def run_config(config):
    """The settings that define a run (a resumed run must match them)."""
    return {key: config[key] for key in _RUN_KEYS}


def check_output_dir(config):
    """Refuses to mix two different runs in one output folder."""
    output_dir = config["output_dir"]
    config_path = os.path.join(output_dir, "config.json")
    wanted = run_config(config)
    if os.path.exists(config_path):
        with open(config_path) as f:
            existing = json.load(f)
        if config["resume"]:
            if existing != wanted:
                changed = sorted(k for k in wanted if existing.get(k) != wanted[k])
                raise UsageError(
                    f"--resume: {output_dir} holds a run with different settings "
                    f"({', '.join(changed)}); resume with the same flags"
                )
        elif not config["overwrite"]:
            raise UsageError(
                f"--output-dir {output_dir} already holds a run; pass --resume to "
                "continue it, --overwrite to replace it, or choose another folder"
            )
    elif os.path.isdir(output_dir) and os.listdir(output_dir) and not config["resume"]:
        raise UsageError(
            f"--output-dir {output_dir} is not empty and holds no run; choose "
            "another folder"
        )


def write_output_dir(config):
    """Creates the output folder (replacing it with --overwrite) and its config."""
    output_dir = config["output_dir"]
    if config["overwrite"] and not config["resume"] and os.path.isdir(output_dir):
        import shutil

        shutil.rmtree(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "config.json"), "w") as f:
        json.dump(run_config(config), f, indent=2)


def _check_dataset(name):
    if name in ("digits", "cifar10"):
        return
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UsageError(
            f"unknown dataset: --dataset {name!r} (built in: digits, cifar10; "
            "other names are TFDS datasets, which need `pip install "
            "tensorflow-datasets`)"
        ) from None
    if name.split(":")[0].split("/")[0] not in tfds.list_builders():
        raise UsageError(
            f"unknown dataset: --dataset {name!r} is neither digits, cifar10 nor "
            "a TFDS dataset"
        )


def main(argv=None):
    """Entry point of `train.py`; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = resolve_config(args)
        if not config["data_dir"]:
            _check_dataset(config["dataset"])
        check_output_dir(config)
        from keras_imsvd import _training

        _training.run(config)
    except UsageError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "train.py: interrupted; continue with the same flags and --resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
