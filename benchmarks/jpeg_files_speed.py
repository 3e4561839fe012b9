"""Two-view throughput from JPEG files: `StreamingViews` vs a PyTorch DataLoader.

The "from JPEG files" mode of `augment_speed.py` (`--jpeg-files N`). A folder
of `N` synthetic JPEGs of ImageNet-like size (about 400 x 350, quality 90, in
10 class folders) is written with Pillow into a temporary folder. Each side
then turns files into batches of the two ImageNet views at 224 px:

- ours: `keras_imsvd.data.StreamingViews` (decode only the crop window, resize,
  then the batch layers), its process pinned to `workers` cores;
- ours from TFRecords (first folder only): the same JPEG bytes written into
  16 TFRecord files, streamed through `keras_imsvd.data.TFRecordImages`;
- the baseline: a `torch.utils.data.DataLoader` with `num_workers=workers`
  over a dataset that opens each file with PIL, converts it to RGB and applies
  the published torchvision transforms (`pil_views.imagenet_pair`), then
  `ToTensor`'s float32 conversion; the loader's process and its workers
  pinned to `workers` cores.

Each measurement runs in its own process; the parent samples the resident
memory of that process and all its children every 0.2 s (peak of the sum),
and the child reads the CPU time (threads and worker processes included) of
its timed loop. Also timed on one thread: decoding the crop window alone
(`decode_and_crop_jpeg`) against decoding the whole JPEG and cropping it, on
the same windows.
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))


def _write_images(task):
    from PIL import Image

    folder, start, stop = task
    rng = np.random.default_rng(start)
    # A few textured 450 x 500 bases; each file is a random crop of one.
    y, x = np.mgrid[0:450, 0:500] / 400.0
    bases = []
    for _ in range(8):
        phase = rng.uniform(0, 6, 3)
        image = 127.5 + 90 * np.stack(
            [np.sin(7 * x + p) * np.cos(5 * y - p) for p in phase], -1
        )
        image += rng.normal(0, 12, image.shape)
        bases.append(np.clip(image, 0, 255).astype("uint8"))
    for index in range(start, stop):
        height = int(rng.integers(300, 400))
        width = int(rng.integers(350, 450))
        top, left = int(rng.integers(0, 450 - height)), int(rng.integers(0, 50))
        image = bases[index % 8][top : top + height, left : left + width]
        path = os.path.join(folder, f"class_{index % 10}", f"{index:07d}.jpg")
        Image.fromarray(image).save(path, quality=90)


def make_folder(count, root):
    """Writes `count` JPEGs into `root/class_k/`, with two processes."""
    import multiprocessing

    for k in range(10):
        os.makedirs(os.path.join(root, f"class_{k}"), exist_ok=True)
    step = 500
    tasks = [(root, s, min(s + step, count)) for s in range(0, count, step)]
    with multiprocessing.Pool(2) as pool:
        pool.map(_write_images, tasks)


def _cpu_seconds():
    """CPU seconds of this process and its live children."""
    import psutil

    tree = [psutil.Process(), *psutil.Process().children(recursive=True)]
    total = 0.0
    for process in tree:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _ours(folder, workers, images, batch_size):
    from keras_imsvd import data

    files, labels, _ = data.list_image_files(folder)
    stream = data.StreamingViews(files, labels, batch_size=batch_size, seed=0)
    iterator = iter(stream.dataset())
    next(iterator)  # tracing and the first batch are not timed
    return _timed(iterator, images, batch_size)


def write_records(folder, root, shards=16):
    """Writes the JPEGs of `folder` unchanged into `shards` TFRecord files
    `root/train-*` (the keys of TensorFlow's ImageNet scripts)."""
    import tensorflow as tf

    from keras_imsvd import data

    files, labels, _ = data.list_image_files(folder)
    os.makedirs(root, exist_ok=True)
    order = np.random.default_rng(0).permutation(len(files))
    for shard in range(shards):
        path = os.path.join(root, f"train-{shard:05d}-of-{shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for index in order[shard::shards]:
                with open(files[index], "rb") as f:
                    encoded = f.read()
                feature = {
                    "image/encoded": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[encoded])
                    ),
                    "image/class/label": tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[int(labels[index])])
                    ),
                }
                example = tf.train.Example(features=tf.train.Features(feature=feature))
                writer.write(example.SerializeToString())


def _ours_tfrecords(root, workers, images, batch_size):
    from keras_imsvd import data

    records = data.TFRecordImages(os.path.join(root, "train-*"))
    stream = data.StreamingViews(records, batch_size=batch_size, seed=0)
    iterator = iter(stream.dataset())
    next(iterator)
    return _timed(iterator, images, batch_size)


def _timed(iterator, images, batch_size):
    """`(images, seconds, cpu_seconds)` of the next `images // batch_size` batches."""
    cpu, start = _cpu_seconds(), time.perf_counter()
    for _ in range(images // batch_size):
        next(iterator)
    seconds = time.perf_counter() - start
    return (images // batch_size) * batch_size, seconds, _cpu_seconds() - cpu


class _PILFiles:
    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        import pil_views
        from PIL import Image

        with Image.open(self.files[index]) as image:
            first, second = pil_views.imagenet_pair(image.convert("RGB"))
        return (
            np.asarray(first, np.float32) / 255.0,
            np.asarray(second, np.float32) / 255.0,
        )


def _baseline(folder, workers, images, batch_size):
    import torch

    sys.path.insert(0, _HERE)
    torch.set_num_threads(1)
    random.seed(0)
    # Listed without the library, so that TensorFlow is not loaded here.
    files = sorted(os.path.join(d, f) for d, _, names in os.walk(folder) for f in names)
    loader = torch.utils.data.DataLoader(
        _PILFiles(files),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        worker_init_fn=lambda i: random.seed(i),
    )
    iterator = iter(loader)
    next(iterator)
    return _timed(iterator, images, batch_size)


def _crop_decode(folder, images):
    """Seconds per image: decode_and_crop_jpeg vs decode_jpeg then crop."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from keras_imsvd import data

    files = data.list_image_folder(folder)[0][:images]
    rng = np.random.default_rng(0)
    contents = [tf.io.read_file(f) for f in files]
    windows = []
    for c in contents:
        height, width, _ = tf.image.extract_jpeg_shape(c).numpy()
        side = int(np.sqrt(rng.uniform(0.08, 1.0)) * min(height, width))
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
        windows.append(tf.constant([top, left, side, side]))
    crop = tf.function(lambda c, w: tf.io.decode_and_crop_jpeg(c, w, channels=3))
    whole = tf.function(
        lambda c, w: tf.io.decode_jpeg(c, channels=3)[
            w[0] : w[0] + w[2], w[1] : w[1] + w[3]
        ]
    )
    functions = {"decode_and_crop": crop, "decode_then_crop": whole}
    times = {name: [] for name in functions}
    for function in functions.values():
        function(contents[0], windows[0])
    # Alternating rounds; the fastest round of each is the least disturbed.
    for _ in range(3):
        for name, function in functions.items():
            start = time.perf_counter()
            for c, w in zip(contents, windows):
                function(c, w)
            times[name].append((time.perf_counter() - start) / len(contents))
    result = {name: min(values) for name, values in times.items()}
    result["speedup"] = result["decode_then_crop"] / result["decode_and_crop"]
    return result


def child(argv):
    """Runs one measurement (in its own process) and prints its JSON."""
    kind, folder, workers, images, batch_size = argv
    workers, images, batch_size = int(workers), int(images), int(batch_size)
    # Equal cores: the process (and the DataLoader's workers, which inherit
    # it) may run on `workers` cores only.
    os.sched_setaffinity(0, set(range(workers)))
    if kind == "crop_decode":
        print(json.dumps(_crop_decode(folder, images)))
        return
    function = {
        "ours": _ours,
        "ours_tfrecords": _ours_tfrecords,
        "pil_dataloader": _baseline,
    }[kind]
    count, seconds, cpu = function(folder, workers, images, batch_size)
    print(json.dumps({"images": count, "seconds": seconds, "loop_cpu_seconds": cpu}))


def _measure(kind, folder, workers, images, batch_size):
    """Runs `child` in a process; adds its peak RSS (with children) and CPU."""
    import psutil

    command = [sys.executable, os.path.abspath(__file__), "--child", kind, folder]
    command += [str(workers), str(images), str(batch_size)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    peak, done = [0], threading.Event()

    def sample():
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    done.set()
    output = process.stdout.read()
    if status != 0:
        raise RuntimeError(f"{kind} failed with status {status}")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(peak[0] / 2**20)
    result["process_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    if "seconds" in result:
        result["images_per_second"] = result["images"] / result["seconds"]
    return result


def run(args):
    """The mode's report: both sides at each worker count, per folder size."""
    report = {"cpu_count": os.cpu_count(), "batch_size": args.jpeg_batch}
    root = tempfile.mkdtemp(prefix="imsvd_jpeg_speed_")
    try:
        for count in args.jpeg_files:
            folder = os.path.join(root, f"files_{count}")
            started = time.perf_counter()
            make_folder(count, folder)
            entry = {"files": count, "write_seconds": time.perf_counter() - started}
            total = sum(
                os.path.getsize(os.path.join(d, f))
                for d, _, names in os.walk(folder)
                for f in names
            )
            entry["folder_mb"] = round(total / 2**20)
            records = os.path.join(root, f"records_{count}")
            if count == args.jpeg_files[0]:
                write_records(folder, records)
            for workers in args.jpeg_workers:
                for kind in ("ours", "ours_tfrecords", "pil_dataloader"):
                    if kind != "ours" and count != args.jpeg_files[0]:
                        continue  # the others once, on the first folder
                    source = records if kind == "ours_tfrecords" else folder
                    result = _measure(
                        kind, source, workers, args.jpeg_images, args.jpeg_batch
                    )
                    result["per_cpu_second"] = result["images"] / max(
                        result["loop_cpu_seconds"], 1e-9
                    )
                    entry[f"{kind}_{workers}"] = result
                    print(f"{count} files, {kind}, {workers} worker(s): {result}")
            if count == args.jpeg_files[0]:
                entry["crop_decode"] = _measure("crop_decode", folder, 1, 500, 1)
                print(f"crop decode: {entry['crop_decode']}")
            report[str(count)] = entry
            shutil.rmtree(folder)
            shutil.rmtree(records, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, _HERE)
    child(sys.argv[2:])
