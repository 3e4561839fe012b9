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
# # 3. One model, three backends
#
# keras_imsvd is written with `keras.ops` only, so the same `IMSVDModel` trains on
# TensorFlow, JAX and PyTorch. Keras picks its backend once, when it is first
# imported, from the `KERAS_BACKEND` environment variable; so this notebook runs
# each backend in its own Python process:
#
# 1. a small training script is written to a temporary file;
# 2. it is run three times, with `KERAS_BACKEND=tensorflow`, `jax` and `torch`:
#    each run pretrains a model on the digits and saves it as a `.keras` file;
# 3. each backend then loads the models saved by the others, and the embeddings
#    of the same images are compared numerically.
#
# The data pipeline is `tf.data` on every backend (TensorFlow is installed with
# every extra), so the three runs read exactly the same kind of batches.
#
# **`KERAS_IMSVD_QUICK=1`** trains for one epoch on fewer images (for CI). Without
# it, five epochs on the 1,400 training images per backend take a few minutes
# on a CPU (PyTorch is the slowest of the three there).

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
EPOCHS = 1 if QUICK else 5
LIMIT = 512 if QUICK else 1400
BACKENDS = ["tensorflow", "jax", "torch"]
workdir = tempfile.mkdtemp(prefix="imsvd_backends_")
print("working folder:", workdir)

# %% [markdown]
# ## The script
#
# It has two modes. `train` builds and fits the model, saves it, and writes the
# embeddings of 64 fixed held-out images and the loss history. `load` loads every
# saved model and writes the embeddings it computes for the same images. Nothing
# in it names a backend: it is ordinary Keras code.

# %%
SCRIPT = """
import json
import sys
import time

import keras
import numpy as np

import keras_imsvd

mode, workdir, epochs, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
backend = keras.backend.backend()
(x_train, _), (x_test, y_test) = keras_imsvd.data.load_digits_split()
x_train = x_train[:limit]
# 64 held-out images at the 16x16 size of the views, without augmentation.
probe, _ = keras_imsvd.data.evaluation_arrays((x_test[:64], y_test[:64]), image_size=16)

if mode == "train":
    keras.utils.set_random_seed(0)
    views = keras_imsvd.augment.digits_views(seed=0)
    dataset = keras_imsvd.data.multiview_dataset(x_train, views, batch_size=128, seed=0)
    model = keras_imsvd.IMSVDModel(
        keras_imsvd.backbones.small_convnet(), projector="512-512", bin_size=16
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    start = time.time()
    history = model.fit(dataset, epochs=epochs, verbose=0)
    seconds = time.time() - start
    model.save(f"{workdir}/{backend}.keras")
    np.save(f"{workdir}/{backend}_saved.npy", model.embed(probe))
    with open(f"{workdir}/{backend}.json", "w") as f:
        json.dump({"seconds": seconds, "history": history.history}, f)
    print(f"{backend}: {epochs} epochs in {seconds:.1f} s, final loss {history.history['loss'][-1]:.4f}")
else:
    for source in ("tensorflow", "jax", "torch"):
        model = keras.models.load_model(f"{workdir}/{source}.keras")
        np.save(f"{workdir}/{source}_loaded_on_{backend}.npy", model.embed(probe))
    print(f"{backend}: loaded the three models")
"""
script = os.path.join(workdir, "imsvd_backend.py")
with open(script, "w") as f:
    f.write(SCRIPT)


def run(backend, mode):
    """Runs the script in a fresh process with KERAS_BACKEND set."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.time()
    result = subprocess.run(
        [sys.executable, script, mode, workdir, str(EPOCHS), str(LIMIT)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{backend} {mode} failed:\n{result.stderr[-3000:]}")
    print(result.stdout.strip(), f"(process: {time.time() - start:.0f} s)")


# %% [markdown]
# ## Train on each backend
#
# The three runs use the same seed, but each backend draws its random numbers
# with its own generator, so the initial weights and the augmentations differ:
# the curves are alike, not identical.

# %%
for backend in BACKENDS:
    run(backend, "train")

# %%
fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
keys = ["loss", "invariance_loss", "diagonal_loss", "off_diagonal_loss"]
for backend in BACKENDS:
    with open(os.path.join(workdir, f"{backend}.json")) as f:
        record = json.load(f)
    for ax, key in zip(axes, keys):
        values = record["history"][key]
        ax.plot(
            np.arange(1, len(values) + 1),
            values,
            marker="o" if QUICK else None,
            label=backend,
        )
        ax.set_title(key)
        ax.set_xlabel("epoch")
axes[0].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Save on one backend, load on another
#
# Each backend now loads the three `.keras` files. A `.keras` file holds the
# configuration of every layer (the library's layers, losses, optimizers and
# models are registered for serialisation) and the weights as plain arrays, so it
# does not depend on the backend that wrote it.

# %%
for backend in BACKENDS:
    run(backend, "load")

# %% [markdown]
# Rows: the backend that trained and saved the model. Columns: the backend that
# loaded it. Each entry is the largest absolute difference between the
# embeddings computed after loading and those computed by the saving backend
# before it saved.

# %%
differences = np.zeros((3, 3))
for i, source in enumerate(BACKENDS):
    saved = np.load(os.path.join(workdir, f"{source}_saved.npy"))
    for j, target in enumerate(BACKENDS):
        loaded = np.load(os.path.join(workdir, f"{source}_loaded_on_{target}.npy"))
        differences[i, j] = np.abs(loaded - saved).max()
scale = np.abs(np.load(os.path.join(workdir, "jax_saved.npy"))).max()
print(
    f"embeddings: 64 images x {saved.shape[1]} features, largest |value| {scale:.2f}\n"
)
print("max abs diff".ljust(22) + "".join(f"{'on ' + t:>16s}" for t in BACKENDS))
for i, source in enumerate(BACKENDS):
    print(f"saved on {source:13s}" + "".join(f"{d:16.2e}" for d in differences[i]))
assert differences.max() < 1e-3, differences

# %% [markdown]
# The differences are at the level of float32 rounding (different backends order
# their sums differently): the three backends compute the same function from the
# same file. A model trained on a GPU with JAX can be served with PyTorch or
# TensorFlow, and the other way round.
#
# ## Timings
#
# Wall-clock seconds of `fit` in each process (on a shared CPU, not a benchmark;
# the first epoch includes compilation):

# %%
for backend in BACKENDS:
    with open(os.path.join(workdir, f"{backend}.json")) as f:
        print(f"{backend:12s} {json.load(f)['seconds']:6.1f} s for {EPOCHS} epoch(s)")

# %% [markdown]
# ## Summary
#
# - Choose the backend with `KERAS_BACKEND=tensorflow|jax|torch` before Keras is
#   imported; nothing else changes.
# - `.keras` files move between backends, and give the same embeddings up to
#   float32 rounding.
# - For several devices or machines on each backend, see tutorial 4 and the
#   distributed training guide.
