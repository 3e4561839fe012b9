"""Measurements behind docs/distributed.md, run by hand (not collected by pytest).

Step time of `fit` on 1 device and on 4 simulated ones (same global batch):

    python -m tests.distribute.benchmark_data_parallel step-time jax
    python -m tests.distribute.benchmark_data_parallel step-time tensorflow
    python -m tests.distribute.benchmark_data_parallel step-time torch

Collectives that XLA compiles for the loss and its gradients, and the floats a
device receives for them, with the published ImageNet shapes on 8 devices:

    python -m tests.distribute.benchmark_data_parallel collectives

Each measurement runs in fresh processes with the right environment. Simulated
devices share this machine's cores, so the step times show the overhead of the
data-parallel machinery, not a speed-up.
"""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np

GLOBAL_BATCH = 128
# Simulated devices on few, busy cores sometimes deadlock in XLA's CPU
# collectives (a rendezvous that 3 of 4 devices reach, see test_data_parallel);
# fail fast, and try again.
_FAIL_FAST = "--xla_cpu_collective_call_terminate_timeout_seconds=30"
_ATTEMPTS = 3
IMAGE_SHAPE = (16, 16, 3)
STEPS = 20


def _dataset():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = rng.normal(size=(GLOBAL_BATCH * STEPS,) + IMAGE_SHAPE).astype("float32")
    data = tf.data.Dataset.from_tensor_slices({"view_1": images, "view_2": images})
    return data.batch(GLOBAL_BATCH, drop_remainder=True).cache()


def _model():
    import keras

    import keras_imsvd

    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [keras.layers.Flatten(), keras.layers.Dense(512, activation="relu")]
    )
    projector = keras.Sequential(
        [
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, use_bias=False),
        ]
    )
    model = keras_imsvd.IMSVDModel(encoder, projector=projector, bin_size=16)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model


def _time_fit(make_model, dataset, callbacks=None, epochs=5):
    """Seconds per step: the fastest epoch after the first (which compiles)."""
    import keras

    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    callbacks = list(callbacks or []) + [EpochTimer()]
    make_model().fit(dataset, epochs=epochs, verbose=0, callbacks=callbacks)
    return min(times[1:]) / STEPS


def _step_time_worker(backend, devices):
    from keras_imsvd import distribute

    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices
        )
    if backend == "torch":
        import torch

        # Several threads per process thrash on a small, shared machine.
        torch.set_num_threads(1)
    if devices == 1 and backend != "torch":
        return _time_fit(_model, _dataset())
    names = [f"/cpu:{i}" for i in range(devices)] if backend == "tensorflow" else None
    with distribute.data_parallel(devices=names) as replicas:
        return _time_fit(
            _model,
            replicas.distribute_dataset(_dataset()),
            callbacks=[distribute.SynchronizeReplicas()],
        )


def _spawn(backend, devices, **env):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **env)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.distribute.benchmark_data_parallel", "worker"]
        + [backend, str(devices)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _seconds(process):
    stdout, stderr = process.communicate()
    try:
        return float(stdout.split()[-1])
    except (IndexError, ValueError):
        lines = [line for line in stderr.splitlines() if not line.startswith("    @")]
        raise RuntimeError("worker failed:\n" + "\n".join(lines[-5:])) from None


def _processes(backend, devices):
    if backend == "jax":
        flags = f"--xla_force_host_platform_device_count={devices} {_FAIL_FAST}"
        return [_spawn(backend, devices, XLA_FLAGS=flags)]
    if backend == "torch" and devices > 1:
        port = str(29000 + os.getpid() % 1000)
        return [
            _spawn(
                backend,
                devices,
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
                RANK=str(rank),
                WORLD_SIZE=str(devices),
            )
            for rank in range(devices)
        ]
    return [_spawn(backend, devices)]


def step_time(backend):
    for devices in (1, 4):
        for attempt in range(_ATTEMPTS):
            try:
                seconds = [_seconds(p) for p in _processes(backend, devices)]
                break
            except RuntimeError as error:
                if "Termination timeout" not in str(error) or attempt + 1 == _ATTEMPTS:
                    raise
        print(
            f"{backend}: {devices} device(s), global batch {GLOBAL_BATCH}: "
            f"{1000 * max(seconds):.1f} ms per step"
        )


def _received(op, shapes, devices):
    """Floats one device receives for a collective (ring algorithms)."""
    sizes = [int(np.prod([int(d) for d in s.split(",") if d])) for s in shapes]
    share = (devices - 1) / devices
    if op == "all-reduce":
        return 2 * share * sum(sizes)
    if op == "reduce-scatter":  # shapes are the scattered outputs
        return (devices - 1) * sum(sizes)
    return share * sum(sizes)  # all-gather (gathered), all-to-all (all pieces)


def _collectives_worker(batch_size, num_variables, bin_size):
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec

    import keras_imsvd
    from keras_imsvd import distribute

    devices = len(jax.devices())

    def gathered(a, b):
        return keras_imsvd.joint_cross_entropy(
            distribute.all_gather(a), distribute.all_gather(b)
        )

    plans = {
        "XLA alone": keras_imsvd.joint_cross_entropy,
        "all_gather (replicated codes)": gathered,
        "global_joint_cross_entropy (row blocks)": (
            distribute.global_joint_cross_entropy
        ),
    }
    report = {}
    with distribute.data_parallel() as replicas:
        shape = (batch_size, num_variables, bin_size)
        layout = replicas.distribution.get_data_layout(shape).backend_layout
        mesh = layout.mesh
        for name, plan in plans.items():
            step = jax.jit(
                jax.value_and_grad(lambda a, b, p=plan: p(a, b)[0], argnums=(0, 1)),
                in_shardings=(layout, layout),
                out_shardings=(NamedSharding(mesh, PartitionSpec()), (layout, layout)),
            )
            spec = jax.ShapeDtypeStruct(shape, np.float32)
            text = step.lower(spec, spec).compile().as_text()
            found, total = [], 0.0
            pattern = r"= (.*?) (all-reduce|all-gather|all-to-all|reduce-scatter)"
            for line in text.splitlines():
                match = re.search(pattern + r"(-start)?\(", line)
                if match:
                    shapes = re.findall(r"f32\[([\d,]*)\]", match.group(1))
                    total += _received(match.group(2), shapes, devices)
                    found.append(f"{match.group(2)}({' '.join(sorted(set(shapes)))})")
            report[name] = {"collectives": found, "received_floats": int(total)}
    return report


def collectives(batch_size=2048, num_variables=102, bin_size=80, devices=8):
    flag = f"--xla_force_host_platform_device_count={devices} {_FAIL_FAST}"
    process = subprocess.run(
        [sys.executable, "-m", "tests.distribute.benchmark_data_parallel", "worker"]
        + ["collectives", str(batch_size), str(num_variables), str(bin_size)],
        env=dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS=flag),
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    report = json.loads(process.stdout.splitlines()[-1])
    dim = num_variables * bin_size
    print(
        f"N={batch_size}, D={dim} (K={num_variables}, b={bin_size}), {devices} devices"
    )
    for name, entry in report.items():
        print(f"- {name}: {entry['received_floats'] / 1e6:.1f} M floats per device")
        for op in entry["collectives"]:
            print(f"    {op}")


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        if sys.argv[2] == "collectives":
            sizes = [int(a) for a in sys.argv[3:6]]
            print(json.dumps(_collectives_worker(*sizes)), flush=True)
        else:
            print(_step_time_worker(sys.argv[2], int(sys.argv[3])), flush=True)
        os._exit(0)
    elif sys.argv[1] == "step-time":
        step_time(sys.argv[2])
    else:
        collectives(*[int(a) for a in sys.argv[2:]])
