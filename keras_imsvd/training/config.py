"""The settings of one pretrain-then-evaluate run, and the published recipes.

A run is data: `RunConfig` is a frozen dataclass, and each recipe (the bundled
digits, the published CIFAR-10 and ImageNet settings) is a mapping of the fields
it sets. `resolve_config` fills the fields a user left unset from the recipe of
the dataset and validates the result. Field names are the library's own words
(`temperature`, `invariance_weight`); the command line translates the flags of
the published script (`--t`, `--ti-coeff`) into them.
"""

import dataclasses
import math
import os
from types import MappingProxyType

ARCHITECTURES = ("small_convnet", "resnet18_cifar", "resnet50")
VIEW_PRESETS = ("digits", "cifar", "imagenet")
OPTIMIZERS = ("sgd", "sgd-decoupled", "lars")
PRECISIONS = ("auto", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("none", "data-parallel")
AUGMENT_ON = ("data", "device")
JIT_COMPILE = ("auto", "on", "off")
EVAL_PROTOCOLS = ("fast", "published")

RECIPES = MappingProxyType(
    {
        # Bundled scikit-learn digits: a three-block convnet and a 512-512
        # projector at b = 16; a few minutes on a CPU.
        "digits": MappingProxyType(
            {
                "architecture": "small_convnet",
                "projector": "512-512",
                "bin_size": 16,
                "epochs": 30,
                "batch_size": 128,
                "base_learning_rate": 0.2,
                "optimizer": "sgd",
                "weight_decay": 5e-4,
                "warmup_epochs": 2,
                "views": "digits",
                "image_size": 16,
                "eval_every": 5,
                "validation_size": 397,
            }
        ),
        # The published CIFAR-10 recipe (arXiv:2501.03469, appendix).
        "cifar10": MappingProxyType(
            {
                "architecture": "resnet18_cifar",
                "projector": "1024-1024-1024",
                "bin_size": 32,
                "epochs": 800,
                "batch_size": 512,
                "base_learning_rate": 0.1,
                "optimizer": "sgd",
                "weight_decay": 5e-4,
                "warmup_epochs": 10,
                "views": "cifar",
                "image_size": 32,
                "eval_every": 10,
                "validation_size": 5000,
            }
        ),
        # The published ImageNet recipe, for image folders and TFDS datasets.
        "imagenet": MappingProxyType(
            {
                "architecture": "resnet50",
                "projector": "8192-8160",
                "bin_size": 80,
                "epochs": 100,
                "batch_size": 2048,
                "base_learning_rate": 0.6,
                "optimizer": "lars",
                "weight_decay": 1e-6,
                "warmup_epochs": 10,
                "views": "imagenet",
                "image_size": 224,
                "eval_every": 10,
                "validation_size": 5000,
            }
        ),
    }
)


class UsageError(Exception):
    """A problem with the settings or the data, reported without a traceback.

    Args:
        message: what is wrong, naming the setting and the value received.
        field: the `RunConfig` field at fault, if one is; the command line
            rewrites the field name in `message` into the flag the user typed.
    """

    def __init__(self, message, field=None):
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every setting of one run of `train.py` (see `resolve_config`)."""

    dataset: str = "digits"
    data_dir: str | None = None
    architecture: str = "small_convnet"
    projector: str = "512-512"
    bin_size: int = 16
    temperature: float = 1.0
    invariance_weight: float = 1.0
    diagonal_weight: float = 1.0
    off_diagonal_weight: float = 1.0
    epochs: int = 30
    batch_size: int = 128
    base_learning_rate: float = 0.2
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    warmup_epochs: float = 2.0
    mixed_precision: str | None = None
    seed: int = 0
    distribute: str = "none"
    augment_on: str = "data"
    jit_compile: str = "auto"
    image_size: int = 16
    views: str = "digits"
    validation_size: int = 397
    limit: int | None = None
    output_dir: str = os.path.join("runs", "digits")
    eval_every: int = 5
    probe_epochs: int = 100
    eval_protocol: str = "fast"
    eval_epochs: int | None = None
    resume: bool = False
    overwrite: bool = False
    explain: bool = False
    verbose: int = 2

    # The fields that define what is trained: a resumed run must match them.
    TRAINING_FIELDS = (
        "dataset",
        "data_dir",
        "architecture",
        "projector",
        "bin_size",
        "temperature",
        "invariance_weight",
        "diagonal_weight",
        "off_diagonal_weight",
        "epochs",
        "batch_size",
        "base_learning_rate",
        "weight_decay",
        "optimizer",
        "warmup_epochs",
        "mixed_precision",
        "seed",
        "distribute",
        "image_size",
        "views",
        "validation_size",
        "limit",
    )

    def __post_init__(self):
        validate(self)

    def training_settings(self):
        """The settings that define the trained model, as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.TRAINING_FIELDS}


def recipe_name(dataset, data_dir=None):
    """The recipe that fills unset fields: digits, cifar10, or imagenet.

    A folder takes the ImageNet recipe, or the CIFAR-10 one with `dataset`
    `"cifar10"` (a CIFAR-10 root holding `train/` and `test/`).
    """
    if data_dir:
        return "cifar10" if dataset == "cifar10" else "imagenet"
    return dataset if dataset in RECIPES else "imagenet"


def resolve_config(**settings):
    """A validated `RunConfig` from the settings given, the rest from the recipe.

    Settings passed as `None` count as unset. When the warm-up is unset and the
    recipe's warm-up is not shorter than `epochs`, a tenth of the run warms up,
    so that short runs keep the shape of the schedule.
    """
    given = {key: value for key, value in settings.items() if value is not None}
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(RunConfig)})
    if unknown:
        raise TypeError(f"Unknown run settings: {', '.join(unknown)}")
    recipe = recipe_name(given.get("dataset", "digits"), given.get("data_dir"))
    values = {**RECIPES[recipe], **given}
    if "warmup_epochs" not in given and "epochs" in given:
        if _is_number(values["epochs"]) and values["warmup_epochs"] >= values["epochs"]:
            values["warmup_epochs"] = values["epochs"] / 10
    if "output_dir" not in given:
        name = "folder" if given.get("data_dir") else values.get("dataset", "digits")
        values["output_dir"] = os.path.join("runs", str(name))
    return RunConfig(**values)


def published_protocol(config):
    """The published linear evaluation for a run: `"cifar10"` for the CIFAR-10
    recipe or 32 px images, `"imagenet"` for the ImageNet recipe, `None` for
    the digits, which have none."""
    recipe = recipe_name(config.dataset, config.data_dir)
    if recipe == "digits":
        return None
    return "cifar10" if recipe == "cifar10" or config.image_size == 32 else "imagenet"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(condition, field, value, requirement):
    if not condition:
        raise UsageError(f"{field} {requirement}. Received: {value!r}", field=field)


def _check_int(config, field, minimum):
    value = getattr(config, field)
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        field,
        value,
        f"must be an integer >= {minimum}",
    )


def _check_float(config, field, positive):
    value = getattr(config, field)
    ok = _is_number(value) and math.isfinite(value)
    ok = ok and (value > 0 if positive else value >= 0)
    _check(
        ok, field, value, "must be a finite number " + ("> 0" if positive else ">= 0")
    )


def _check_choice(config, field, choices):
    value = getattr(config, field)
    _check(value in choices, field, value, f"must be one of {', '.join(choices)}")


def validate(config):
    """Raises `UsageError` for the first setting that cannot make a run."""
    _check_choice(config, "architecture", ARCHITECTURES)
    _check_choice(config, "views", VIEW_PRESETS)
    _check_choice(config, "optimizer", OPTIMIZERS)
    _check_choice(config, "distribute", DISTRIBUTIONS)
    _check_choice(config, "augment_on", AUGMENT_ON)
    _check_choice(config, "jit_compile", JIT_COMPILE)
    if config.mixed_precision is not None:
        _check_choice(config, "mixed_precision", PRECISIONS)
    for field in ("epochs", "image_size", "probe_epochs", "eval_every"):
        _check_int(config, field, 1)
    _check_validation_and_protocol(config)
    _check_int(config, "seed", 0)
    _check_int(config, "verbose", 0)
    # A joint distribution is estimated over the batch, and a variable of one
    # bin carries no information.
    _check_int(config, "batch_size", 2)
    _check_int(config, "bin_size", 2)
    for field in ("base_learning_rate", "temperature"):
        _check_float(config, field, positive=True)
    for field in (
        "weight_decay",
        "invariance_weight",
        "diagonal_weight",
        "off_diagonal_weight",
        "warmup_epochs",
    ):
        _check_float(config, field, positive=False)
    _check(
        config.warmup_epochs < config.epochs,
        "warmup_epochs",
        config.warmup_epochs,
        f"must be smaller than epochs ({config.epochs})",
    )
    _check_projector(config)
    if config.limit is not None:
        _check_int(config, "limit", config.batch_size)
    _check(
        isinstance(config.output_dir, str) and config.output_dir.strip() != "",
        "output_dir",
        config.output_dir,
        "must be a folder path",
    )
    _check(
        not (config.resume and config.overwrite),
        "overwrite",
        config.overwrite,
        "cannot be combined with resume",
    )


def streams(config):
    """Whether a run streams its data: a folder (of images or TFRecords) or a
    TFDS data set other than the digits and CIFAR-10, trained with the
    ImageNet views on the data side (device views take their batches from
    memory)."""
    from_disk = bool(config.data_dir) or config.dataset not in ("digits", "cifar10")
    return from_disk and config.views == "imagenet" and config.augment_on != "device"


def _check_validation_and_protocol(config):
    # validation_size 0: no images held out of the training set, evaluation on
    # the test split (checked where the data are loaded); the digits have none.
    _check_int(config, "validation_size", 0)
    _check(
        config.validation_size >= 1
        or recipe_name(config.dataset, config.data_dir) != "digits",
        "validation_size",
        config.validation_size,
        "must be an integer >= 1 for the digits, which have no test split",
    )
    _check_choice(config, "eval_protocol", EVAL_PROTOCOLS)
    if config.eval_epochs is not None:
        _check_int(config, "eval_epochs", 1)
    _check(
        config.eval_protocol == "fast" or published_protocol(config) is not None,
        "eval_protocol",
        config.eval_protocol,
        "must be fast for the digits: the paper publishes linear evaluations "
        "for CIFAR-10 and ImageNet only",
    )


def _check_projector(config):
    from keras_imsvd.models.projector import parse_projector_spec

    try:
        widths = parse_projector_spec(config.projector)
    except (TypeError, ValueError) as error:
        raise UsageError(f"projector: {error}", field="projector") from None
    _check(
        widths[-1] % config.bin_size == 0,
        "bin_size",
        config.bin_size,
        f"must divide the embedding size, the last projector width ({widths[-1]})",
    )
