"""Images per second of a full IMSVD train step, beside a supervised step.

For each backend (each in its own process, `KERAS_BACKEND` set before Keras is
imported), two models share the same backbone architecture and the same two
views of a fixed batch:

- IMSVD: `keras_imsvd.IMSVDModel` (backbone, projector, soft discretization,
  joint cross-entropy), the backend's own `train_step`;
- supervised: the backbone with a linear classifier head and softmax
  cross-entropy on both views (each view through the backbone on its own,
  as IMSVD does).

Both are compiled with the same SGD (momentum 0.9) and Keras' default
`jit_compile="auto"` (XLA on JAX and TensorFlow, eager on PyTorch), and
stepped with `train_on_batch` in alternating rounds, after two untimed steps.
The IMSVD overhead is the extra time of its step over the supervised one:
the projector and the loss (and their gradients and updates).

Settings: CIFAR-10 (ResNet-18 with the CIFAR stem, projector 1024-1024-1024,
b=32, 32x32 images) and ImageNet (ResNet-50, projector 8192-8160, b=80) at a
small batch and resolution (see `--imagenet-batch`, `--imagenet-size`).

Usage:

    python benchmarks/train_step.py --quick
    python benchmarks/train_step.py
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


def build_models(setting, image_size):
    """`(imsvd_model, supervised_model)` on fresh backbones of one architecture."""
    import keras

    import keras_imsvd

    shape = (image_size, image_size, 3)
    if setting == "cifar":

        def backbone():
            return keras_imsvd.backbones.resnet18_cifar(input_shape=shape)

        projector, bin_size, classes = "1024-1024-1024", 32, 10
    else:

        def backbone():
            # keras_imsvd.backbones.resnet50() returns a Model whose output is
            # a one-element list, which IMSVDModel.build rejects ("encoder
            # output shape=((None, 2048),)"); the same network, single output:
            base = keras.applications.ResNet50(
                include_top=False, weights=None, input_shape=shape, pooling="avg"
            )
            return keras.Model(base.input, base.output, name="resnet50")

        projector, bin_size, classes = "8192-8160", 80, 1000

    keras.utils.set_random_seed(0)
    imsvd = keras_imsvd.IMSVDModel(backbone(), projector=projector, bin_size=bin_size)
    views = {"view_1": (None, *shape), "view_2": (None, *shape)}
    imsvd.build(views)
    supervised = SupervisedTwoViews(backbone(), classes)
    supervised.build(views)
    for model in (imsvd, supervised):
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    return imsvd, supervised


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


def worker(setting, batch_size, image_size, steps):
    import keras

    imsvd, supervised = build_models(setting, image_size)
    rng = np.random.default_rng(0)
    shape = (batch_size, image_size, image_size, 3)
    views = {
        "view_1": rng.uniform(size=shape).astype("float32"),
        "view_2": rng.uniform(size=shape).astype("float32"),
    }
    labels = rng.integers(0, 10, size=(batch_size,)).astype("int32")
    first = {}
    for name, model in (("imsvd", imsvd), ("supervised", supervised)):
        started = time.perf_counter()
        model.train_on_batch(views, labels)
        first[name] = time.perf_counter() - started
        model.train_on_batch(views, labels)
    times = {"imsvd": [], "supervised": []}
    for _ in range(steps):
        for name, model in (("imsvd", imsvd), ("supervised", supervised)):
            started = time.perf_counter()
            logs = model.train_on_batch(views, labels, return_dict=True)
            float(logs["loss"])
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {
        "backend": keras.backend.backend(),
        "setting": setting,
        "batch_size": batch_size,
        "image_size": image_size,
        "times_s": times,
        "first_step_s": first,
        "median_step_s": medians,
        "imsvd_images_per_s": batch_size / medians["imsvd"],
        "supervised_images_per_s": batch_size / medians["supervised"],
        "overhead_percent": 100.0 * (medians["imsvd"] / medians["supervised"] - 1),
        "parameters": {
            "imsvd": int(sum(np.prod(v.shape) for v in imsvd.trainable_variables)),
            "supervised": int(
                sum(np.prod(v.shape) for v in supervised.trainable_variables)
            ),
        },
    }


def _run_worker(backend, setting, batch_size, image_size, steps):
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
    ]
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            result["process_seconds"] = time.perf_counter() - started
            return result
    return {"backend": backend, "error": (proc.stderr or proc.stdout)[-2000:]}


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
    parser.add_argument("--imagenet-batch", type=int, default=8)
    parser.add_argument("--imagenet-size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
    parser.add_argument(
        "--output", default=os.path.join(_HERE, "results", "train_step.json")
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.cifar_batch = 16
        args.imagenet_batch = 4
        args.imagenet_size = 64
        args.steps = 2
        args.output = args.output.replace(".json", "_quick.json")
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        setting, batch_size, image_size, steps = args.worker
        result = worker(setting, int(batch_size), int(image_size), int(steps))
        print("RESULT " + json.dumps(result), flush=True)
        return
    results = []
    for setting in args.settings:
        for backend in args.backends:
            if setting == "cifar":
                batch_size, image_size = args.cifar_batch, 32
            else:
                batch_size, image_size = args.imagenet_batch, args.imagenet_size
            print(f"{setting} on {backend} ...", flush=True)
            results.append(
                _run_worker(backend, setting, batch_size, image_size, args.steps)
            )
            print(json.dumps(results[-1])[:300], flush=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)
    print(
        "| setting | backend | batch | size | IMSVD (img/s) | supervised (img/s) "
        "| IMSVD overhead |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in results:
        if "error" in row:
            print(f"| | {row['backend']} | error: see JSON | | | | |")
            continue
        print(
            f"| {row['setting']} | {row['backend']} | {row['batch_size']} | "
            f"{row['image_size']} | {row['imsvd_images_per_s']:.1f} | "
            f"{row['supervised_images_per_s']:.1f} | "
            f"{row['overhead_percent']:+.0f}% |"
        )
    print(f"raw results in {args.output}")


if __name__ == "__main__":
    main()
