"""Two views per image: made by tf.data against made in the step, on CPU.

Side (a) is the input pipeline of `--augment-on data`:
`keras_imsvd.data.multiview_dataset` over uint8 arrays (gather a batch, scale,
both views in parallel map calls, prefetch). Side (b) is what
`IMSVDModel(views=...)` runs inside its training step with `--augment-on
device`: the same view layers called on the backend's tensors, compiled where
the backend allows (`jax.jit` under JAX with the seed states passed in and
out, a `tf.function` under TensorFlow, eager under PyTorch, as Keras' `auto`
runs the step on a CPU). Both start from the same uint8 images in memory:
CIFAR-sized 32 px images for `cifar_views(32)` (batch 512), and 256 px images
for `imagenet_views(224)` (batch 64). Rounds alternate between the sides, so
each ratio compares numbers measured side by side; each backend runs in its
own process. Each tf.data round starts a new iterator over one epoch of
`BATCHES_PER_ROUND` batches, so that no batch is prepared while the other side
is timed, and is timed from its first batch to its last (steady state, its
start-up left out).

Usage:

    python benchmarks/device_views_speed.py            # all backends
    python benchmarks/device_views_speed.py --rounds 2 --backends jax
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# (view size, batch size, source image size)
SETTINGS = ((32, 512, 32), (224, 64, 256))
BATCHES_PER_ROUND = 8


def _views(image_size):
    from keras_imsvd import augment

    if image_size <= 64:
        return augment.cifar_views(image_size, seed=0)
    return augment.imagenet_views(image_size, seed=0)


def _device_function(views):
    """`images -> (view_1, view_2)` on backend tensors, compiled if possible."""
    import keras

    from keras_imsvd.models._device_views import apply_views

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        variables = [v for view in views for v in view.non_trainable_variables]

        def pure(values, images):
            mapping = list(zip(variables, values))
            with keras.StatelessScope(state_mapping=mapping) as scope:
                out = apply_views(views, images)
            return out, [scope.get_current_value(v) for v in variables]

        compiled = jax.jit(pure)
        state = [v.value for v in variables]

        def run(images):
            nonlocal state
            out, state = compiled(state, images)
            return jax.block_until_ready(out)

        return run
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda images: apply_views(views, images))
    return lambda images: apply_views(views, images)


def measure(image_size, batch_size, rounds, source_size=None):
    """Images per second of both views by tf.data and on backend tensors.

    Args:
        image_size: Side of the views, in pixels.
        batch_size: Images per batch.
        rounds: Timed rounds per side, alternating, after one warm-up round.
        source_size: Side of the uint8 source images. Defaults to
            `image_size`.

    Returns:
        A dict with the per-round images per second of each side, their
        medians and the ratio device / data.
    """
    import keras
    import numpy as np

    from keras_imsvd.data import multiview_dataset

    source_size = source_size or image_size
    count = batch_size * BATCHES_PER_ROUND
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, source_size, source_size, 3), "uint8")
    dataset = multiview_dataset(
        images, views=_views(image_size), batch_size=batch_size, seed=0
    )
    device = _device_function(_views(image_size))
    tensors = [
        keras.ops.convert_to_tensor(images[i : i + batch_size])
        for i in range(0, count, batch_size)
    ]

    def data_round():
        # A new iterator each round: tf.data works ahead (parallel maps,
        # prefetch), and an iterator kept across rounds would fill its buffers
        # while the other side is timed. Timed from its first batch to its
        # last, so its start-up is not counted either.
        arrivals = []
        for batch in dataset:
            batch["view_2"].numpy()
            arrivals.append(time.perf_counter())
        return arrivals[-1] - arrivals[0]

    def device_round():
        start = time.perf_counter()
        for batch in tensors:
            out = device(batch)
            keras.ops.convert_to_numpy(out["view_2"][0, 0, 0])
        return time.perf_counter() - start

    data_round(), device_round()  # tracing, compiling, tf.data warm-up
    results = {"data": [], "device": []}
    for _ in range(rounds):
        # The data side times BATCHES_PER_ROUND - 1 batches (after the first).
        results["data"].append((count - batch_size) / data_round())
        results["device"].append(count / device_round())
    data = statistics.median(results["data"])
    on_device = statistics.median(results["device"])
    return {
        "image_size": image_size,
        "source_size": source_size,
        "batch_size": batch_size,
        "rounds": rounds,
        "data_images_per_second": results["data"],
        "device_images_per_second": results["device"],
        "data_median": round(data, 1),
        "device_median": round(on_device, 1),
        "device_over_data": round(on_device / data, 3),
    }


def _child(rounds):
    import keras

    for image_size, batch_size, source_size in SETTINGS:
        row = measure(image_size, batch_size, rounds, source_size)
        print(json.dumps({"backend": keras.backend.backend(), "row": row}), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    parser.add_argument(
        "--output", default=os.path.join("benchmarks", "results", "device_views.json")
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.rounds)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs (shared with other work)",
        "backends": {},
    }
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="")
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", "--rounds", str(args.rounds)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        report["backends"][backend] = []
        for line in child.stdout:
            if not line.startswith("{"):
                continue
            row = json.loads(line)["row"]
            report["backends"][backend].append(row)
            with open(args.output, "w") as f:  # what is measured so far
                json.dump(report, f, indent=2)
            print(
                f"{backend:10s} {row['image_size']:4d} px, batch {row['batch_size']}: "
                f"tf.data {row['data_median']:8.1f} img/s, in the step "
                f"{row['device_median']:8.1f} img/s, ratio {row['device_over_data']}",
                flush=True,
            )
        if child.wait():
            raise RuntimeError(f"the {backend} process failed ({child.returncode})")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
