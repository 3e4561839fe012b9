"""Two-view augmentation throughput: the library's tf.data views vs per-image PIL.

The library side is `keras_imsvd.data.multiview_dataset` with
`keras_imsvd.augment.cifar_views()` (32 px) or `imagenet_views()` (224 px): a
tf.data pipeline that gathers a batch, applies both views to it in parallel
map calls and prefetches. The baseline applies the published torchvision
transforms image by image on PIL images (`pil_views.py`) in a
`multiprocessing.Pool` with as many worker processes as cores, each task
returning a batch of both views as NumPy arrays the way a `DataLoader` worker
hands over a collated batch. The baseline is timed twice per round: stopping
at uint8 arrays (the step before `ToTensor`, the cheaper end point), and with
`ToTensor`'s conversion to float32 in [0, 1] done in the worker, the format
the library's views produce.

Both start from decoded images in memory (no JPEG decoding on either side):
the CIFAR-10 training images at 32 px, and the same images upsampled to
256 px as the ImageNet-sized source. Rounds alternate between the two sides
so that each ratio compares numbers measured side by side.

Usage:

    python benchmarks/augment_speed.py --quick
    python benchmarks/augment_speed.py
"""

import argparse
import json
import multiprocessing
import os
import random
import resource
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

import pil_views  # noqa: E402

_IMAGES = None


def load_images(count, size):
    """`count` CIFAR-10 training images (uint8), resized to `size` if needed."""
    try:
        import keras_imsvd

        (images, _), _ = keras_imsvd.data.load_cifar10_folder(dtype="uint8")
        images = images[:count]
        source = "CIFAR-10 training images"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
        source = "random uint8 images (CIFAR-10 archive not found)"
    if size != images.shape[1]:
        from PIL import Image

        images = np.stack(
            [
                np.asarray(Image.fromarray(x).resize((size, size), Image.BICUBIC))
                for x in images
            ]
        )
        source += f", upsampled to {size} px (bicubic)"
    return images, source


# -- baseline: per-image PIL in a process pool -----------------------------


def _init_worker(images, seed):
    global _IMAGES
    _IMAGES = images
    random.seed(seed + os.getpid())


def _pil_batch(task):
    from PIL import Image

    start, stop, preset, to_float = task
    pair = pil_views.cifar_pair if preset == "cifar" else pil_views.imagenet_pair
    firsts, seconds = [], []
    for index in range(start, stop):
        first, second = pair(Image.fromarray(_IMAGES[index]))
        if to_float:  # ToTensor: float32 in [0, 1] (layout kept: HWC)
            first = np.asarray(first, np.float32) / 255.0
            second = np.asarray(second, np.float32) / 255.0
        firsts.append(first)
        seconds.append(second)
    return np.stack(firsts), np.stack(seconds)


def pil_throughput(pool, count, batch_size, preset, to_float=False):
    """Images per second (each image giving two views) of the PIL pool."""
    tasks = [
        (start, min(start + batch_size, count), preset, to_float)
        for start in range(0, count, batch_size)
    ]
    started = time.perf_counter()
    produced = 0
    for first, _ in pool.imap(_pil_batch, tasks):
        produced += len(first)
    return produced / (time.perf_counter() - started)


# -- library: tf.data -------------------------------------------------------


def make_dataset(images, preset, batch_size, image_size):
    import keras_imsvd

    views = (
        keras_imsvd.augment.cifar_views(image_size, seed=0)
        if preset == "cifar"
        else keras_imsvd.augment.imagenet_views(image_size, seed=0)
    )
    return keras_imsvd.data.multiview_dataset(
        images, views=views, batch_size=batch_size, seed=0
    )


def tf_throughput(dataset, batch_size, skip=1):
    """Images per second over one pass, after the first `skip` batches."""
    iterator = iter(dataset)
    for _ in range(skip):
        next(iterator)
    started = time.perf_counter()
    produced = 0
    for batch in iterator:
        batch["view_1"].numpy()
        batch["view_2"].numpy()
        produced += batch_size
    return produced / (time.perf_counter() - started)


def _cpu_seconds():
    """User + system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def profile_layers(preset, args):
    """Seconds per batch of each layer of both views, each in a `tf.function`.

    Wall time, and the CPU time of all threads: tf.data runs several batches
    at once, so its throughput follows the CPU time.
    """
    import tensorflow as tf

    import keras_imsvd

    size = 32 if preset == "cifar" else args.imagenet_size
    batch_size = args.cifar_batch if preset == "cifar" else args.imagenet_batch
    source_size = 32 if preset == "cifar" else 256
    images, _ = load_images(batch_size, source_size)
    images = tf.constant(images.astype("float32") / 255.0)
    make = (
        keras_imsvd.augment.cifar_views
        if preset == "cifar"
        else keras_imsvd.augment.imagenet_views
    )
    timings = {}
    for view_index, view in enumerate(make(size, seed=0), start=1):
        current = images
        for layer in [view, *view.layers]:
            function = tf.function(lambda x, layer=layer: layer(x, training=True))
            inputs = images if layer is view else current
            out = function(inputs)
            runs, cpu = [], []
            for _ in range(5):
                started, used = time.perf_counter(), _cpu_seconds()
                out = function(inputs)
                out.numpy()
                runs.append(time.perf_counter() - started)
                cpu.append(_cpu_seconds() - used)
            name = "whole view" if layer is view else layer.name
            timings[f"view {view_index}: {name}"] = {
                "wall": statistics.median(runs),
                "cpu": statistics.median(cpu),
            }
            if layer is not view:
                current = out
    print(f"{preset}: seconds per batch of {batch_size}, per layer (wall, CPU)")
    for name, seconds in timings.items():
        print(f"  {name:<40}{seconds['wall']:8.3f}{seconds['cpu']:8.3f}")
    return timings


def run_preset(preset, args):
    size = 32 if preset == "cifar" else args.imagenet_size
    count = args.cifar_images if preset == "cifar" else args.imagenet_images
    batch_size = args.cifar_batch if preset == "cifar" else args.imagenet_batch
    source_size = 32 if preset == "cifar" else 256
    images, source = load_images(count, source_size)
    dataset = make_dataset(images, preset, batch_size, size)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers, initializer=_init_worker, initargs=(images, 0)) as pool:
        # Warm-up: workers started, every XLA cluster of the views compiled.
        pil_throughput(pool, min(count, 2 * batch_size), batch_size, preset)
        tf_throughput(dataset.take(4), batch_size)
        library, baseline, baseline_float = [], [], []
        for _ in range(args.rounds):
            library.append(tf_throughput(dataset, batch_size))
            baseline.append(pil_throughput(pool, count, batch_size, preset))
            baseline_float.append(
                pil_throughput(pool, count, batch_size, preset, to_float=True)
            )
            print(
                f"{preset}: tf.data {library[-1]:.0f} img/s, PIL pool "
                f"{baseline[-1]:.0f} img/s (uint8), {baseline_float[-1]:.0f} "
                "img/s (+ToTensor)",
                flush=True,
            )
    return {
        "source": source,
        "images": count,
        "image_size": size,
        "batch_size": batch_size,
        "library_images_per_s": library,
        "baseline_images_per_s": baseline,
        "library_median": statistics.median(library),
        "baseline_median": statistics.median(baseline),
        "ratio": statistics.median(library) / statistics.median(baseline),
        "baseline_to_tensor_images_per_s": baseline_float,
        "baseline_to_tensor_median": statistics.median(baseline_float),
        "ratio_to_tensor": statistics.median(library)
        / statistics.median(baseline_float),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="few images, 1 round")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time each layer of the library views on one batch",
    )
    parser.add_argument("--presets", default="cifar,imagenet")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cifar-images", type=int, default=10_240)
    parser.add_argument("--cifar-batch", type=int, default=256)
    parser.add_argument("--imagenet-images", type=int, default=1024)
    parser.add_argument("--imagenet-batch", type=int, default=32)
    parser.add_argument("--imagenet-size", type=int, default=224)
    parser.add_argument(
        "--output", default=os.path.join(_HERE, "results", "augment_speed.json")
    )
    parser.add_argument(
        "--jpeg-files",
        default="",
        help="from JPEG files: folder sizes to write and stream, e.g. 20000,100000 "
        "(see jpeg_files_speed.py); the in-memory presets are then not run",
    )
    parser.add_argument("--jpeg-workers", default="1,2")
    parser.add_argument("--jpeg-images", type=int, default=1024)
    parser.add_argument("--jpeg-batch", type=int, default=64)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 1
        args.cifar_images = 1024
        args.imagenet_images = 128
        args.imagenet_batch = 32
        args.output = args.output.replace(".json", "_quick.json")
    args.presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    args.jpeg_files = [int(n) for n in args.jpeg_files.split(",") if n.strip()]
    args.jpeg_workers = [int(n) for n in args.jpeg_workers.split(",") if n.strip()]
    if args.jpeg_files and args.quick:
        args.jpeg_images = 128
    return args


def main_jpeg(args):
    """The "from JPEG files" mode: writes its own JSON and prints a table."""
    import jpeg_files_speed

    report = jpeg_files_speed.run(args)
    output = args.output.replace(".json", "_jpeg_files.json")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output, "w") as f:
        json.dump(report, f, indent=2)
    print("| files | workers | side | img/s | img per CPU-s | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for count in args.jpeg_files:
        entry = report[str(count)]
        for key, row in entry.items():
            if isinstance(row, dict) and "images_per_second" in row:
                side, workers = key.rsplit("_", 1)
                print(
                    f"| {count} | {workers} | {side} | "
                    f"{row['images_per_second']:.1f} | {row['per_cpu_second']:.1f} | "
                    f"{row['peak_rss_mb']} |"
                )
    print(f"raw results in {output}")


def main(argv=None):
    args = parse_args(argv)
    if args.jpeg_files:
        return main_jpeg(args)
    report = {"workers": args.workers, "cpu_count": os.cpu_count()}
    for preset in args.presets:
        report[preset] = run_preset(preset, args)
        if args.profile:
            report[preset]["layer_seconds_per_batch"] = profile_layers(preset, args)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=2)
    print(
        "| views | size | tf.data (img/s) | PIL pool, uint8 (img/s) | ratio "
        "| PIL pool + ToTensor (img/s) | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets:
        row = report[preset]
        print(
            f"| {preset} | {row['image_size']} | {row['library_median']:.0f} | "
            f"{row['baseline_median']:.0f} | {row['ratio']:.2f}x | "
            f"{row['baseline_to_tensor_median']:.0f} | "
            f"{row['ratio_to_tensor']:.2f}x |"
        )
    print(f"raw results in {args.output}")


if __name__ == "__main__":
    main()
