"""Images per second of a full IMSVD train step, beside a supervised step.

For each backend (each in its own process, `KERAS_BACKEND` set before Keras is
imported), up to three steps share the same backbone architecture and the
same two views of a fixed batch, held on the device:

- imsvd: `keras_imsvd.IMSVDModel` (backbone, projector, soft discretization,
  joint cross-entropy), the backend's own `train_step`;
- supervised: the backbone with a linear classifier head and softmax
  cross-entropy on both views (each view through the backbone on its own,
  as IMSVD does);
- published (in the PyTorch process only): the published step in plain
  PyTorch (`published_step.py`: torchvision-style ResNet, `torch.optim.SGD`,
  `torch.autocast` for mixed precision, `channels_last`), the baseline.

The Keras models are compiled with the same SGD (momentum 0.9) and Keras'
default `jit_compile="auto"` (XLA on JAX and TensorFlow, eager on PyTorch),
and stepped with `train_on_batch`; all steps run in alternating rounds, after
two untimed steps. The IMSVD overhead is the extra time of its step over the
supervised one: the projector and the loss (and their gradients and updates).
Images per second count the batch once (each step sees two views of it).
`--precisions mixed` sets Keras' `mixed_float16` policy on a GPU
(`mixed_bfloat16` on the CPU), and autocast to the same type for the baseline.

Settings: CIFAR-10 (ResNet-18 with the CIFAR stem, projector 1024-1024-1024,
b=32, 32x32 images) and ImageNet (the torchvision-style ResNet-50 of
`keras_imsvd.backbones.resnet50`, projector 8192-8160, b=80) at a small batch
and resolution by default (see `--imagenet-batch`, `--imagenet-size`).

Usage:

    python benchmarks/train_step.py --quick
    python benchmarks/train_step.py
    python benchmarks/train_step.py --backends jax,torch --settings cifar \\
        --cifar-batch 512 --precisions float32,mixed --models imsvd,published
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_BACKENDS = ("jax", "tensorflow", "torch")
_MODELS = ("imsvd", "supervised", "published")
_PRECISIONS = ("float32", "mixed")


def build_models(setting, image_size, names=("imsvd", "supervised"), width=64):
    """`{name: model}` of the Keras models named, on fresh backbones of one
    architecture, built and compiled."""
    import keras

    import keras_imsvd

    shape = (image_size, image_size, 3)
    if setting == "cifar":

        def backbone():
            return keras_imsvd.backbones.resnet18_cifar(input_shape=shape, width=width)

        projector, bin_size, classes = "1024-1024-1024", 32, 10
    else:

        def backbone():
            return keras_imsvd.backbones.resnet50(input_shape=shape)

        projector, bin_size, classes = "8192-8160", 80, 1000

    keras.utils.set_random_seed(0)
    views = {"view_1": (None, *shape), "view_2": (None, *shape)}
    models = {}
    if "imsvd" in names:
        models["imsvd"] = keras_imsvd.IMSVDModel(
            backbone(), projector=projector, bin_size=bin_size
        )
    if "supervised" in names:
        models["supervised"] = SupervisedTwoViews(backbone(), classes)
    for model in models.values():
        model.build(views)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    return models


def _supervised_class():
    import keras

    class _SupervisedTwoViews(keras.Model):
        """Backbone + linear head, cross-entropy on both views."""

        def __init__(self, backbone, num_classes, **kwargs):
            super().__init__(**kwargs)
            self.backbone = backbone
            self.head = keras.layers.Dense(num_classes)
            self.cross_entropy = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True
            )

        def build(self, input_shape):
            shape = tuple(input_shape["view_1"])
            self.backbone.build(shape)
            self.head.build(self.backbone.compute_output_shape(shape))
            self.built = True

        def call(self, inputs, training=None):
            return {
                key: self.head(self.backbone(inputs[key], training=training))
                for key in ("view_1", "view_2")
            }

        def compute_loss(
            self, x=None, y=None, y_pred=None, sample_weight=None, training=True
        ):
            return self.cross_entropy(y, y_pred["view_1"]) + self.cross_entropy(
                y, y_pred["view_2"]
            )

    return _SupervisedTwoViews


def SupervisedTwoViews(backbone, num_classes):  # noqa: N802
    """A supervised two-view model (the class is made once Keras is imported)."""
    return _supervised_class()(backbone, num_classes, name="supervised_two_views")


def _published_step(setting, views, mixed_precision, width):
    """The published PyTorch step on the views, `(step, parameters, device)`."""
    import torch

    sys.path.insert(0, _HERE)
    import published_step

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = published_step.build(setting, device, width)
    step = published_step.make_train_step(model, mixed_precision)
    inputs = [published_step.to_views(views[k], device) for k in views]
    parameters = sum(p.numel() for p in model.parameters())
    return (lambda: float(step(*inputs))), parameters, device


def _keras_step(model, views, labels):
    def step():
        logs = model.train_on_batch(views, labels, return_dict=True)
        return float(logs["loss"])

    return step


def _device_of(tensor):
    if hasattr(tensor, "devices"):  # JAX
        return ",".join(str(d) for d in tensor.devices())
    return str(getattr(tensor, "device", "cpu"))


def worker(
    setting, batch_size, image_size, steps, precision="float32", models=None, width=64
):
    """Times the steps named in `models` in alternating rounds; one result row."""
    import keras

    models = tuple(models or ("imsvd", "supervised"))
    if precision == "mixed":
        from keras_imsvd.training.model import precision_policy

        keras.mixed_precision.set_global_policy(precision_policy("auto"))
    policy = keras.mixed_precision.global_policy().name
    rng = np.random.default_rng(0)
    shape = (batch_size, image_size, image_size, 3)
    views = {
        "view_1": rng.uniform(size=shape).astype("float32"),
        "view_2": rng.uniform(size=shape).astype("float32"),
    }
    labels = rng.integers(0, 10, size=(batch_size,)).astype("int32")
    keras_models = build_models(setting, image_size, models, width)
    # The batch sits on the device, as the published step's tensors do.
    device_views = {k: keras.ops.convert_to_tensor(v) for k, v in views.items()}
    device_labels = keras.ops.convert_to_tensor(labels)
    steppers = {
        name: _keras_step(model, device_views, device_labels)
        for name, model in keras_models.items()
    }
    parameters = {
        name: int(sum(np.prod(v.shape) for v in model.trainable_variables))
        for name, model in keras_models.items()
    }
    notes = []
    published_device = None
    if "published" in models:
        if keras.backend.backend() == "torch":
            steppers["published"], parameters["published"], published_device = (
                _published_step(setting, views, precision == "mixed", width)
            )
        else:
            notes.append("published: timed in the torch process")
    first = {}
    for name, step in steppers.items():
        started = time.perf_counter()
        step()
        first[name] = time.perf_counter() - started
        step()
    times = {name: [] for name in steppers}
    losses = {}
    for _ in range(steps):
        for name, step in steppers.items():
            started = time.perf_counter()
            losses[name] = step()
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "backend": keras.backend.backend(),
        "setting": setting,
        "precision": precision,
        "policy": policy,
        "batch_size": batch_size,
        "image_size": image_size,
        "width": width if setting == "cifar" else None,
        "device": _device_of(device_views["view_1"]),
        "published_device": published_device,
        "times_s": times,
        "first_step_s": first,
        "median_step_s": medians,
        "last_loss": losses,
        "images_per_s": {name: batch_size / m for name, m in medians.items()},
        "parameters": parameters,
        "notes": notes,
    }
    for name in medians:
        result[f"{name}_images_per_s"] = batch_size / medians[name]
    if "imsvd" in medians and "supervised" in medians:
        result["overhead_percent"] = 100.0 * (
            medians["imsvd"] / medians["supervised"] - 1
        )
    return result


def _run_worker(
    backend,
    setting,
    batch_size,
    image_size,
    steps,
    precision,
    models,
    timeout=None,
    width=64,
):
    # On a shared machine, libgomp's busy-waiting threads stall PyTorch's
    # parallel regions behind descheduled threads (10x slower medians); passive
    # waiting avoids that and changes nothing when the cores are free.
    env = dict(
        os.environ,
        OMP_WAIT_POLICY="PASSIVE",
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        setting,
        str(batch_size),
        str(image_size),
        str(steps),
        precision,
        ",".join(models),
        str(width),
    ]
    started = time.perf_counter()
    row = {"backend": backend, "setting": setting, "precision": precision}
    try:
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {**row, "error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            result["process_seconds"] = time.perf_counter() - started
            return result
    return {**row, "error": (proc.stderr or proc.stdout)[-2000:]}


def _csv(text, choices, flag):
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in choices]
    if unknown or not items:
        raise argparse.ArgumentTypeError(
            f"{flag} takes a comma-separated list of {', '.join(choices)}. "
            f"Received: {text!r}"
        )
    return items


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="batch 16 (CIFAR), 4 at 64 px (ImageNet)"
    )
    parser.add_argument("--backends", default=",".join(_BACKENDS))
    parser.add_argument("--settings", default="cifar,imagenet")
    parser.add_argument("--cifar-batch", type=int, default=64)
    parser.add_argument(
        "--cifar-width",
        type=int,
        default=64,
        help="first-stage width of the CIFAR ResNet-18 (64 as published)",
    )
    parser.add_argument("--imagenet-batch", type=int, default=8)
    parser.add_argument("--imagenet-size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
    parser.add_argument(
        "--precisions",
        default="float32",
        help="comma-separated: float32, mixed (float16 on GPU, bfloat16 on CPU)",
    )
    parser.add_argument(
        "--models",
        default="imsvd,supervised",
        help="comma-separated: imsvd, supervised, published (the PyTorch baseline)",
    )
    parser.add_argument(
        "--worker-timeout",
        type=float,
        default=None,
        help="seconds before a worker process is stopped (default: no limit)",
    )
    parser.add_argument(
        "--output", default=os.path.join(_HERE, "results", "train_step.json")
    )
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.cifar_batch = 16
        args.imagenet_batch = 4
        args.imagenet_size = 64
        args.steps = 2
        args.output = args.output.replace(".json", "_quick.json")
    for flag in (
        "cifar_batch",
        "cifar_width",
        "imagenet_batch",
        "imagenet_size",
        "steps",
    ):
        if getattr(args, flag) < 1:
            parser.error(
                f"--{flag.replace('_', '-')} must be a positive integer. "
                f"Received: {getattr(args, flag)}"
            )
    try:
        args.backends = _csv(args.backends, _BACKENDS, "--backends")
        args.settings = _csv(args.settings, ("cifar", "imagenet"), "--settings")
        args.precisions = _csv(args.precisions, _PRECISIONS, "--precisions")
        args.models = _csv(args.models, _MODELS, "--models")
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    return args


def _write(results, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)


def format_table(results):
    """Markdown table of the result rows."""
    lines = [
        "| setting | backend | precision | batch | size | IMSVD (img/s) | "
        "supervised (img/s) | published PyTorch (img/s) | IMSVD overhead |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def rate(row, name):
        value = row.get(f"{name}_images_per_s")
        return "" if value is None else f"{value:.1f}"

    for row in results:
        if "error" in row:
            lines.append(
                f"| {row.get('setting', '')} | {row['backend']} | "
                f"{row.get('precision', '')} | error: see JSON | | | | | |"
            )
            continue
        overhead = row.get("overhead_percent")
        lines.append(
            f"| {row['setting']} | {row['backend']} | {row['precision']} | "
            f"{row['batch_size']} | {row['image_size']} | {rate(row, 'imsvd')} | "
            f"{rate(row, 'supervised')} | {rate(row, 'published')} | "
            f"{'' if overhead is None else f'{overhead:+.0f}%'} |"
        )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        setting, batch_size, image_size, steps, precision, models, width = args.worker
        result = worker(
            setting,
            int(batch_size),
            int(image_size),
            int(steps),
            precision,
            models.split(","),
            int(width),
        )
        print("RESULT " + json.dumps(result), flush=True)
        return
    results = []
    for setting in args.settings:
        for precision in args.precisions:
            for backend in args.backends:
                if setting == "cifar":
                    batch_size, image_size = args.cifar_batch, 32
                else:
                    batch_size, image_size = args.imagenet_batch, args.imagenet_size
                models = [
                    m for m in args.models if m != "published" or backend == "torch"
                ]
                if not models:
                    continue
                print(f"{setting} {precision} on {backend} ...", flush=True)
                results.append(
                    _run_worker(
                        backend,
                        setting,
                        batch_size,
                        image_size,
                        args.steps,
                        precision,
                        models,
                        args.worker_timeout,
                        args.cifar_width,
                    )
                )
                print(json.dumps(results[-1])[:300], flush=True)
                # Written after every worker: a run stopped early keeps its rows.
                _write(results, args.output)
    _write(results, args.output)
    print(format_table(results))
    print(f"raw results in {args.output}")


if __name__ == "__main__":
    main()
