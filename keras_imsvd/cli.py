"""The training command: `python train.py` or `keras-imsvd-train`.

Translates the flags, which keep the names of the published script (`--arch`,
`--mlp`, `--bin-size`, `--base-lr`, `--wd`, `--t`, `--ti-coeff`, ...), into a
`keras_imsvd.training.RunConfig`, runs it, and turns the outcome into an exit
status: 0 for a finished run, 1 for a run that diverged or whose result would
mean nothing, 2 for bad flags or data (nothing written), 130 when interrupted.
"""

import argparse
import os
import re
import sys

from keras_imsvd.training import config as config_lib
from keras_imsvd.training.outputs import RunDirectory

# Flag of each RunConfig field where the two names differ.
_FLAGS = {
    "architecture": "--arch",
    "projector": "--mlp",
    "temperature": "--t",
    "invariance_weight": "--ti-coeff",
    "diagonal_weight": "--dia-coeff",
    "off_diagonal_weight": "--off-coeff",
    "base_learning_rate": "--base-lr",
    "weight_decay": "--wd",
}


def flag(field):
    """The command-line flag that sets the `RunConfig` field `field`."""
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def program_name():
    name = os.path.basename(sys.argv[0] if sys.argv else "")
    return name if name in ("train.py", "keras-imsvd-train") else "train.py"


def _recipe_help(field, text):
    defaults = ", ".join(
        f"{name} {recipe[field]}" for name, recipe in config_lib.RECIPES.items()
    )
    return f"{text} (default by recipe: {defaults})"


def build_parser(prog=None):
    parser = argparse.ArgumentParser(
        prog=prog or program_name(),
        description=(
            "Pretrain an encoder with IMSVD, then evaluate it (kNN and linear "
            "probe) against a random-init encoder and raw pixels. With no flags, "
            "runs on the bundled scikit-learn digits in a few minutes. Choose the "
            "backend with KERAS_BACKEND=tensorflow|jax|torch. Unset flags take the "
            "recipe of the data: digits, cifar10, or imagenet (for --data-dir and "
            "TFDS datasets)."
        ),
        epilog="Exit status: 0 finished, 1 diverged or meaningless result, "
        "2 bad flags or data (nothing written), 130 interrupted.",
    )
    recipe = _recipe_help
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default=None,
        help="digits (bundled, the default), cifar10 (../shared tarball, else "
        "TFDS), or any TFDS image dataset name (streamed from its TFRecords "
        "with the imagenet views, evaluated on its validation or test split)",
    )
    data.add_argument(
        "--data-dir",
        default=None,
        help="image folder with one sub-folder per class, a root holding "
        "train/ and val/ or test/, or a root of train-* and validation-* "
        "TFRecord files (overrides --dataset; with --dataset cifar10 the "
        "CIFAR-10 recipe applies)",
    )
    data.add_argument("--image-size", type=int, help=recipe("image_size", "view size"))
    data.add_argument(
        "--views", choices=config_lib.VIEW_PRESETS, help=recipe("views", "views")
    )
    data.add_argument(
        "--validation-size",
        type=int,
        help=recipe(
            "validation_size",
            "images held out of the training set for evaluation; 0: none, "
            "evaluate on the test split (a ROOT/test/ folder, or TFDS)",
        ),
    )
    data.add_argument(
        "--limit", type=int, help="use only this many training images (default: all)"
    )
    model = parser.add_argument_group("model")
    model.add_argument(
        "--arch",
        choices=(*config_lib.ARCHITECTURES, "resnet18"),
        help=recipe("architecture", "encoder; resnet18 is resnet18_cifar (32 px)"),
    )
    model.add_argument("--mlp", help=recipe("projector", "projector widths"))
    model.add_argument(
        "--bin-size", type=int, help=recipe("bin_size", "bins per variable")
    )
    model.add_argument("--t", type=float, help="softmax temperature (default: 1.0)")
    model.add_argument(
        "--ti-coeff", type=float, help="invariance weight (default: 1.0)"
    )
    model.add_argument("--dia-coeff", type=float, help="diagonal weight (default: 1.0)")
    model.add_argument(
        "--off-coeff", type=float, help="off-block weight (default: 1.0)"
    )
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, help=recipe("epochs", "epochs"))
    train.add_argument(
        "--batch-size", type=int, help=recipe("batch_size", "global batch")
    )
    train.add_argument(
        "--base-lr",
        type=float,
        help=recipe("base_learning_rate", "lr = base-lr x batch-size / 256"),
    )
    train.add_argument("--wd", type=float, help=recipe("weight_decay", "weight decay"))
    train.add_argument(
        "--optimizer",
        choices=config_lib.OPTIMIZERS,
        help=recipe(
            "optimizer",
            "sgd: torch.optim.SGD's rule (L2 decay in the gradient), as published; "
            "sgd-decoupled: keras.optimizers.SGD; lars",
        ),
    )
    train.add_argument(
        "--warmup-epochs",
        type=float,
        help=recipe("warmup_epochs", "linear warm-up; a tenth of a shorter run"),
    )
    train.add_argument(
        "--mixed-precision",
        nargs="?",
        const="auto",
        default=None,
        choices=config_lib.PRECISIONS,
        help="compute in 16-bit (auto: float16 on GPU, bfloat16 on CPU); the "
        "loss and the evaluation stay float32 (default: off)",
    )
    train.add_argument(
        "--augment-on",
        choices=config_lib.AUGMENT_ON,
        help="where the two views are made: data, by tf.data on the CPU; "
        "device, inside the training step on the backend's tensors and device "
        "(no TensorFlow needed under JAX and PyTorch) (default: data)",
    )
    train.add_argument(
        "--jit-compile",
        choices=config_lib.JIT_COMPILE,
        help="compile the training step (Model.compile's jit_compile): on, "
        "off, or auto, Keras' choice: JAX compiles with XLA (jax.jit) on CPU "
        "and GPU; TensorFlow compiles with XLA only where it sees a GPU (or "
        "other accelerator), never on a CPU-only machine; PyTorch runs eagerly "
        "(on: torch.compile); any backend stays uncompiled when a layer of the "
        "model does not support XLA (default: auto)",
    )
    train.add_argument("--seed", type=int, help="random seed (default: 0)")
    train.add_argument(
        "--distribute",
        choices=config_lib.DISTRIBUTIONS,
        help="data-parallel: all local devices (JAX, TensorFlow) or torchrun "
        "ranks (default: none)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--output-dir",
        "--exp-dir",
        dest="output_dir",
        help="a new or empty folder, or a run of ours (default: runs/<dataset>); "
        "--exp-dir is the published script's name for it",
    )
    output.add_argument(
        "--eval-every", type=int, help=recipe("eval_every", "kNN monitor period")
    )
    output.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue the run in --output-dir from its newest whole checkpoint",
    )
    output.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace the run in --output-dir (deletes only that run's files)",
    )
    output.add_argument(
        "--explain",
        action="store_true",
        default=None,
        help="write explainability figures",
    )
    output.add_argument(
        "--probe-epochs", type=int, help="linear-probe epochs (default: 100)"
    )
    output.add_argument(
        "--eval-protocol",
        choices=config_lib.EVAL_PROTOCOLS,
        help="fast: kNN and linear probes on precomputed features; published: "
        "the paper's linear evaluation of the recipe (CIFAR-10: 100 epochs, lr "
        "30; ImageNet: lr 0.02, cosine) on augmented images through the frozen "
        "encoder, far slower (default: fast)",
    )
    output.add_argument(
        "--eval-epochs",
        type=int,
        help="epochs of the published evaluation, its schedule kept in shape "
        "(default: 100)",
    )
    output.add_argument(
        "--verbose",
        choices=("auto", "0", "1", "2"),
        default="auto",
        help="0 silent, 1 progress bar, 2 a line per epoch; auto: 1 on a "
        "terminal, else 2 (default: auto)",
    )
    return parser


def config_from_args(args):
    """The `RunConfig` that the parsed flags describe."""
    settings = {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "image_size": args.image_size,
        "views": args.views,
        "validation_size": args.validation_size,
        "limit": args.limit,
        "architecture": _architecture(args),
        "projector": args.mlp,
        "bin_size": args.bin_size,
        "temperature": args.t,
        "invariance_weight": args.ti_coeff,
        "diagonal_weight": args.dia_coeff,
        "off_diagonal_weight": args.off_coeff,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "base_learning_rate": args.base_lr,
        "weight_decay": args.wd,
        "optimizer": args.optimizer,
        "warmup_epochs": args.warmup_epochs,
        "mixed_precision": args.mixed_precision,
        "seed": args.seed,
        "distribute": args.distribute,
        "augment_on": args.augment_on,
        "jit_compile": args.jit_compile,
        "output_dir": args.output_dir,
        "eval_every": args.eval_every,
        "probe_epochs": args.probe_epochs,
        "eval_protocol": args.eval_protocol,
        "eval_epochs": args.eval_epochs,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "explain": args.explain,
    }
    if args.verbose == "auto":
        settings["verbose"] = 1 if sys.stdout.isatty() else 2
    else:
        settings["verbose"] = int(args.verbose)
    config = config_lib.resolve_config(**settings)
    _check_alias(args, config)
    return config


def _architecture(args):
    """`--arch resnet18`, as the published CIFAR script names its encoder."""
    return "resnet18_cifar" if args.arch == "resnet18" else args.arch


def _check_alias(args, config):
    if args.arch == "resnet18" and config.image_size != 32:
        raise config_lib.UsageError(
            "--arch resnet18 is the CIFAR ResNet-18 (resnet18_cifar), for 32 px "
            f"images. Received: --image-size {config.image_size}"
        )


def _in_flags(message, field=None):
    """`message` with the config's field names replaced by the flags."""
    if field and message.startswith(field):
        message = flag(field) + message[len(field) :]
    names = sorted(
        (f for f in config_lib.RunConfig.__dataclass_fields__ if "_" in f),
        key=len,
        reverse=True,
    )
    return re.sub(
        r"(?<![-\w])(" + "|".join(names) + r")(?!\w)",
        lambda m: flag(m.group(1)),
        message,
    )


def _check_dataset(config):
    if config.data_dir or config.dataset in ("digits", "cifar10"):
        return
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise config_lib.UsageError(
            f"unknown dataset: --dataset {config.dataset!r} (built in: digits, "
            "cifar10; other names are TFDS datasets, which need `pip install "
            "tensorflow-datasets`)"
        ) from None
    if config.dataset.split(":")[0].split("/")[0] in tfds.list_builders():
        return
    try:  # a data set prepared in the TFDS data folder, not registered here
        tfds.builder(config.dataset)
    except tfds.core.registered.DatasetNotFoundError:
        raise config_lib.UsageError(
            f"unknown dataset: --dataset {config.dataset!r} is neither digits, "
            "cifar10 nor a TFDS dataset"
        ) from None


def _log_to(prog):
    def log(message):
        print(f"[{prog}] {message}", flush=True)

    return log


def main(argv=None):
    """Entry point of `train.py`; returns the process exit status."""
    from keras_imsvd import training

    prog = program_name()
    args = build_parser(prog).parse_args(argv)
    try:
        config = config_from_args(args)
        _check_dataset(config)
        training.run(config, log=_log_to(prog))
    except training.UsageError as error:
        print(f"{prog}: error: {_in_flags(str(error), error.field)}", file=sys.stderr)
        return 2
    except training.TrainingDiverged as error:
        states = RunDirectory(config.output_dir).states()
        last = (
            f"the last good checkpoint is {config.output_dir}/{states[-1]}.keras"
            if states
            else "no epoch finished, so no checkpoint was written"
        )
        print(f"{prog}: error: {error}; {last}", file=sys.stderr)
        return 1
    except training.RunFailed as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted; continue with the same flags and --resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
