# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Data parallelism, on simulated devices
#
# IMSVD estimates its joint distribution `P` over the **batch**. Under data
# parallelism, where each device holds a slice of the batch, the loss must still
# see the *global* batch, or `P` would be estimated from a fraction of it and
# training would change with the number of devices. `keras_imsvd.distribute`
# guarantees that the loss, and its gradients, equal those of one device on the
# whole global batch.
#
# This notebook shows it without any accelerator: JAX can pretend that the CPU is
# several devices (`XLA_FLAGS=--xla_force_host_platform_device_count=4`). That
# flag must be set before JAX starts, so the experiment runs in a separate
# Python process, from a script written to a temporary file, with
# `KERAS_BACKEND=jax`. It
#
# 1. computes the loss of one global batch of soft codes on 1 device and on 4;
# 2. trains the same model from the same weights on the same batches, once on a
#    single device and once with `keras_imsvd.distribute.data_parallel()` over 4
#    devices, and compares the losses and the final weights;
# 3. lists the collectives XLA compiles for the loss, which shows why the
#    library computes the loss its own way.
#
# The commands for real GPUs and several hosts close the notebook.
# **`KERAS_IMSVD_QUICK=1`** trains for 3 steps instead of 20 (for CI).

# %%
import json
import os
import subprocess
import sys
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np

QUICK = os.environ.get("KERAS_IMSVD_QUICK") == "1"
STEPS = 3 if QUICK else 20
DEVICES = 4
workdir = tempfile.mkdtemp(prefix="imsvd_distributed_")

# %% [markdown]
# ## The script
#
# Everything below runs in the child process. The global batch is 64 images, so
# each of the 4 devices holds 16. The augmented views are drawn once and kept as
# arrays, so that both runs see exactly the same batches.

# %%
SCRIPT = r'''
import json
import re
import sys

import jax
import keras
import numpy as np
import tensorflow as tf

import keras_imsvd
from keras_imsvd import distribute

steps, output = int(sys.argv[1]), sys.argv[2]
GLOBAL_BATCH = 64
result = {"devices": [str(d) for d in jax.devices()]}

# -- 1. The loss of one global batch of soft codes -----------------------------
rng = np.random.default_rng(0)
logits = rng.normal(size=(2, GLOBAL_BATCH, 32, 16)).astype("float32") * 2
codes = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # (2, N, K, b)
p1, p2 = codes[0], codes[1]


def loss_and_grads(loss_fn):
    def loss(a, b):
        return loss_fn(a, b)[0]
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


one_device = loss_and_grads(keras_imsvd.joint_cross_entropy)
value, grads = one_device(p1, p2)
result["loss_one_device"] = float(value)

collective = re.compile(r"= (.*?) (all-reduce|all-gather|all-to-all|reduce-scatter)(-start)?\(")
with distribute.data_parallel() as replicas:
    result["replicas"] = repr(replicas)
    layout = replicas.distribution.get_data_layout(p1.shape).backend_layout
    s1, s2 = (jax.device_put(p, layout) for p in (p1, p2))
    result["shards"] = [[str(s.device), list(s.data.shape)] for s in s1.addressable_shards]
    plans = {
        "XLA alone (joint_cross_entropy on sharded codes)": keras_imsvd.joint_cross_entropy,
        "row blocks (distribute.global_joint_cross_entropy)": distribute.global_joint_cross_entropy,
    }
    result["plans"] = {}
    for name, plan in plans.items():
        step = loss_and_grads(plan)
        sharded_value, sharded_grads = step(s1, s2)
        found = []
        for line in step.lower(s1, s2).compile().as_text().splitlines():
            match = collective.search(line)
            if match:
                shapes = sorted(set(re.findall(r"f32\[([\d,]*)\]", match.group(1))))
                found.append(match.group(2) + " " + " ".join(f"f32[{s}]" for s in shapes))
        result["plans"][name] = {
            "loss": float(sharded_value),
            "loss_diff": float(abs(sharded_value - value)),
            "grad_diff": float(max(np.abs(a - b).max() for a, b in zip(grads, sharded_grads))),
            "collectives": found,
        }

# -- 2. Training: 1 device against 4 -------------------------------------------
(x_train, _), _ = keras_imsvd.data.load_digits_split()
x = x_train[: GLOBAL_BATCH * steps]
pair = keras_imsvd.augment.apply_views(x, keras_imsvd.augment.digits_views(seed=0))
views = {key: np.asarray(value) for key, value in pair.items()}
dataset = tf.data.Dataset.from_tensor_slices(views).batch(GLOBAL_BATCH, drop_remainder=True)


def make_model():
    keras.utils.set_random_seed(0)
    model = keras_imsvd.IMSVDModel(
        keras_imsvd.backbones.small_convnet(), projector="256-256", bin_size=16
    )
    model.build({"view_1": (None, 16, 16, 1), "view_2": (None, 16, 16, 1)})
    return model


class StepLosses(keras.callbacks.Callback):
    """The loss of each step (Keras logs the running mean over the epoch)."""

    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self.losses.append(mean * (batch + 1) - sum(self.losses))


def train(model, data):
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    record = StepLosses()
    model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[record])
    return record.losses, model.get_weights()


initial = make_model().get_weights()
model = make_model()
model.set_weights(initial)
single_losses, single_weights = train(model, dataset)

with distribute.data_parallel() as replicas:
    model = make_model()
    model.set_weights(initial)
    parallel_losses, parallel_weights = train(model, replicas.distribute_dataset(dataset))
    kernel = model.encoder.get_layer("conv0").kernel
    result["weights_layout"] = str(kernel.value.sharding)

# A yardstick for rounding: 1 device again, with the rows of every batch in the
# reverse order. The loss and BatchNorm do not depend on the order of the rows,
# so only the order of the float32 sums changes.
reverse = np.arange(GLOBAL_BATCH * steps).reshape(steps, GLOBAL_BATCH)[:, ::-1].ravel()
reversed_views = {key: value[reverse] for key, value in views.items()}
reversed_dataset = tf.data.Dataset.from_tensor_slices(reversed_views).batch(
    GLOBAL_BATCH, drop_remainder=True
)
model = make_model()
model.set_weights(initial)
reversed_losses, reversed_weights = train(model, reversed_dataset)


def max_diff(first, second):
    return float(max(np.abs(a - b).max() for a, b in zip(first, second)))


result["single_losses"] = single_losses
result["parallel_losses"] = parallel_losses
result["reversed_losses"] = reversed_losses
result["weights_max_diff"] = max_diff(single_weights, parallel_weights)
result["reversed_weights_max_diff"] = max_diff(single_weights, reversed_weights)
result["weights_moved"] = max_diff(single_weights, initial)
with open(output, "w") as f:
    json.dump(result, f)
'''
script = os.path.join(workdir, "imsvd_data_parallel.py")
with open(script, "w") as f:
    f.write(SCRIPT)

# %% [markdown]
# ## Run it on 4 simulated devices
#
# `--xla_cpu_multi_thread_eigen=false` keeps XLA's CPU collectives from waiting on
# each other when the simulated devices outnumber the cores.

# %%
output = os.path.join(workdir, "result.json")
env = dict(
    os.environ,
    KERAS_BACKEND="jax",
    XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES} --xla_cpu_multi_thread_eigen=false",
    TF_CPP_MIN_LOG_LEVEL="2",
)
start = time.time()
completed = subprocess.run(
    [sys.executable, script, str(STEPS), output],
    env=env,
    capture_output=True,
    text=True,
)
if completed.returncode != 0:
    raise RuntimeError(completed.stderr[-4000:])
print(f"child process: {time.time() - start:.0f} s")
with open(output) as f:
    result = json.load(f)
print("devices:", result["devices"])
print(result["replicas"])

# %% [markdown]
# ## 1. One global batch, one loss
#
# The codes of a global batch of 64 images are laid out over the 4 devices, 16
# rows each:

# %%
for device, shape in result["shards"]:
    print(f"{device}: soft codes of shape {tuple(shape)}")

# %% [markdown]
# The loss and its gradients computed from the sharded codes equal those of one
# device holding the whole batch. Two ways of computing it on the 4 devices: the
# plain loss function, left to XLA, and `global_joint_cross_entropy`, which
# `IMSVDModel.compute_loss` uses:

# %%
print(f"loss on 1 device: {result['loss_one_device']:.6f}\n")
for name, plan in result["plans"].items():
    print(name)
    print(
        f"  loss {plan['loss']:.6f}   |diff| {plan['loss_diff']:.1e}   max |grad diff| {plan['grad_diff']:.1e}"
    )
    print("  collectives:", ", ".join(plan["collectives"]))

# %% [markdown]
# Both give the single-device loss, but not at the same price. With the codes of
# `D = K b = 512` entries each, XLA alone lets every device compute the joint
# matrix `P` (`D x D`) from its own 16 rows and then **all-reduces the whole
# `512 x 512` matrix**. The library's plan moves the codes instead (an all-gather
# and an all-to-all of `N x D` numbers), has each device form only its own row
# block of `P`, and finishes with an all-reduce of a few small arrays. With the
# published ImageNet settings (`D = 8160`, `N = 2048`), `P` is 4 times larger than
# the codes; see the distributed training guide for the numbers.
#
# ## 2. Training on 4 devices equals training on 1
#
# The same model (with BatchNorm), the same initial weights and the same batches,
# trained with SGD for the same steps, once on a single device and once under
# `data_parallel()`. As a yardstick for float32 rounding, a third run trains on one
# device with the rows of every batch in reverse order: mathematically the same
# training (the loss and BatchNorm do not depend on the order of the rows), but
# the float32 sums run in another order.

# %%
single = np.array(result["single_losses"])
parallel = np.array(result["parallel_losses"])
reordered = np.array(result["reversed_losses"])
print(
    f"{'step':>4s}{'1 device':>12s}{'4 devices':>12s}{'|1 - 4|':>10s}"
    f"{'|1 - 1 reordered|':>20s}"
)
for step, (a, b, c) in enumerate(zip(single, parallel, reordered), start=1):
    print(f"{step:4d}{a:12.5f}{b:12.5f}{abs(a - b):10.1e}{abs(a - c):20.1e}")
print(
    f"\nweights after {len(single)} steps, max |difference| from the 1-device run:"
    f" 4 devices {result['weights_max_diff']:.1e},"
    f" 1 device reordered {result['reversed_weights_max_diff']:.1e}"
)
print(f"(the weights moved by up to {result['weights_moved']:.2f} during training)")
print("a kernel's layout on the devices:", result["weights_layout"])

fig, (ax, ax_diff) = plt.subplots(1, 2, figsize=(11, 3.2))
steps = np.arange(1, len(single) + 1)
ax.plot(steps, single, "o-", label="1 device, batch 64")
ax.plot(steps, parallel, "x--", label="4 devices, 16 each")
ax.set_xlabel("step")
ax.set_ylabel("loss of the step")
ax.legend()
floor = 1e-8  # an exact 0 is drawn at this floor
ax_diff.semilogy(
    steps, np.maximum(np.abs(single - parallel), floor), "x--", label="|1 - 4 devices|"
)
ax_diff.semilogy(
    steps,
    np.maximum(np.abs(single - reordered), floor),
    "+:",
    label="|1 - 1 device, reordered|",
)
ax_diff.set_xlabel("step")
ax_diff.set_ylabel("loss difference")
ax_diff.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The first steps agree to float32 precision. The 4-device run then drifts from
# the 1-device run about as much as the 1-device run drifts from itself when only
# the order of its sums changes: training amplifies rounding differences step by
# step (any two float32 runs do this); it does not see the devices. On
# JAX, `data_parallel()` is `keras.distribution.DataParallel`: one program runs on
# the global batch, the weights are replicated, and even BatchNorm computes its
# statistics over the global batch, as the published code does with synchronised
# BatchNorm.
#
# ## On real GPUs and hosts
#
# The training script does not change; `data_parallel()` picks each backend's
# machinery. The same pattern as above:
#
# ```python
# with keras_imsvd.distribute.data_parallel() as replicas:
#     dataset = keras_imsvd.data.multiview_dataset(images, views, batch_size=GLOBAL_BATCH, seed=0)
#     model = keras_imsvd.IMSVDModel(encoder, projector="1024-1024-1024", bin_size=32)
#     model.compile(optimizer=keras.optimizers.SGD(0.1 * GLOBAL_BATCH / 256, momentum=0.9))
#     model.fit(replicas.distribute_dataset(dataset), epochs=800,
#               callbacks=[keras_imsvd.distribute.SynchronizeReplicas()])
#     if replicas.is_chief:
#         model.save("imsvd.keras")
# ```
#
# and with `train.py`:
#
# ```bash
# # JAX: all the GPUs of one host
# KERAS_BACKEND=jax python train.py --distribute data-parallel ...
# # JAX: two hosts, on each (process id 0 on the coordinator)
# KERAS_BACKEND=jax KERAS_DISTRIBUTION_JOB_ADDRESSES=10.0.0.1:1234 \
#   KERAS_DISTRIBUTION_NUM_PROCESSES=2 KERAS_DISTRIBUTION_PROCESS_ID=0 \
#   python train.py --distribute data-parallel ...
# # TensorFlow: all the GPUs of one host (MirroredStrategy)
# KERAS_BACKEND=tensorflow python train.py --distribute data-parallel ...
# # TensorFlow: several hosts (MultiWorkerMirroredStrategy), TF_CONFIG on each
# TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}' \
#   KERAS_BACKEND=tensorflow python train.py --distribute data-parallel ...
# # PyTorch: one process per GPU with torchrun, on one host or several
# KERAS_BACKEND=torch torchrun --standalone --nproc-per-node=8 train.py --distribute data-parallel ...
# KERAS_BACKEND=torch torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d \
#   --rdzv-endpoint=10.0.0.1:29500 train.py --distribute data-parallel ...
# ```
#
# Keep the **global** batch when the number of devices changes (it is the `N` of
# the joint distribution), or scale the learning rate with it. The distributed
# training guide (`docs/distributed.md`) covers TensorFlow and PyTorch in detail,
# including how BatchNorm behaves on each.
