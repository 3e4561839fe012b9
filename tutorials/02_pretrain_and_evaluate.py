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
# # 2. Pretrain an encoder and evaluate it
#
# The whole IMSVD workflow on the handwritten digits that ship with scikit-learn
# (1,797 real 8x8 images, no download):
#
# 1. a two-view `tf.data` pipeline (`keras_imsvd.data.multiview_dataset` with the
#    digits views of `keras_imsvd.augment`), and a look at the view pairs;
# 2. pretraining an `IMSVDModel` with plain `model.fit`, without labels;
# 3. evaluation of the frozen encoder with a weighted kNN classifier and linear
#    probes (`keras_imsvd.evaluation`), against the same encoder at its random
#    initialisation and against raw pixels;
# 4. the loss curves.
#
# It runs on whatever `KERAS_BACKEND` is set (TensorFlow, JAX or PyTorch), in a
# few minutes on a CPU. **`KERAS_IMSVD_QUICK=1`** shrinks the run (512 images,
# 2 epochs) so that CI executes the notebook in well under a minute; the results
# are then not meaningful, and the learned encoder may even score below its
# random initialisation. The outputs shown here are from a full run.

# %%
import os
import tempfile
import time
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np

import keras_imsvd

QUICK = os.environ.get("KERAS_IMSVD_QUICK") == "1"
EPOCHS = 2 if QUICK else 50
PROBE_EPOCHS = 10 if QUICK else 100
keras.utils.set_random_seed(0)
# fit() says its shuffle argument does not apply to a tf.data.Dataset: the
# pipeline below shuffles every epoch itself.
warnings.filterwarnings("ignore", message=".*shuffle=True.*")
print(f"keras {keras.__version__}, backend {keras.backend.backend()}, quick={QUICK}")

# %% [markdown]
# ## 1. Data and views
#
# `load_digits_split` gives a stratified split: 1,400 images to pretrain on (their
# labels are not used until evaluation) and 397 held out. Images are float32 in
# [0, 1], channels last.
#
# **Another dataset is one changed line.** The commented lines load the 50,000
# CIFAR-10 training images (from the shared JPEG archive, split into 45,000 and
# 5,000) or any folder with one sub-folder per class (the layout of ImageNet's
# `train/`). Everything below adapts to the image shape: `default_views` picks the
# digits, CIFAR-10 or ImageNet views, and the encoder is built for the view size.
# (On CIFAR-10, use `keras_imsvd.backbones.resnet18_cifar` and many more epochs
# for published numbers; see the training guide.)

# %%
(x_train, y_train), (x_test, y_test) = keras_imsvd.data.load_digits_split()
# (x_train, y_train), (x_test, y_test) = keras_imsvd.data.load_cifar10_folder()
# (x_train, y_train), (x_test, y_test) = keras_imsvd.data.load_image_folder("path/to/train", image_size=64)

if QUICK:
    x_train, y_train = x_train[:512], y_train[:512]
print("train:", x_train.shape, x_train.dtype, " held out:", x_test.shape)

# %% [markdown]
# The views of the digits: upsampling to 16x16, small translations, rotations and
# zooms, and contrast changes. There is no horizontal flip, since digits are not
# flip-invariant. For 8x8 grayscale images `default_views` returns
# `keras_imsvd.augment.digits_views(image_size=16)`; you may pass any pair of
# Keras layers or `keras.layers.Pipeline`s instead.

# %%
views = keras_imsvd.augment.default_views(x_train.shape[1:], seed=0)
print("views:", views[0].name, views[1].name)
dataset = keras_imsvd.data.multiview_dataset(
    x_train, views=views, batch_size=128, seed=0
)
batch = next(iter(dataset))
print({key: tuple(value.shape) for key, value in batch.items()})
image_shape = tuple(batch["view_1"].shape[1:])

# %% [markdown]
# Each element is a dict `{"view_1": x1, "view_2": x2}`: the structure
# `IMSVDModel.fit` reads (a pair would be taken by Keras as `(x, y)`). Below,
# eight training images and two random views of each.

# %%
originals = x_train[:8]
pair = keras_imsvd.augment.apply_views(originals, views)
rows = {
    "original": originals,
    "view 1": keras.ops.convert_to_numpy(pair["view_1"]),
    "view 2": keras.ops.convert_to_numpy(pair["view_2"]),
}
fig, axes = plt.subplots(3, 8, figsize=(10, 4))
for row, (title, images) in enumerate(rows.items()):
    for col in range(8):
        ax = axes[row, col]
        image = images[col]
        ax.imshow(
            image[..., 0] if image.shape[-1] == 1 else image,
            cmap="gray",
            vmin=0,
            vmax=1,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    axes[row, 0].set_ylabel(title)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The model
#
# An `IMSVDModel` is an encoder (any Keras model from images to a feature vector),
# a projector MLP and the soft variable discretization. Here a small three-block
# convnet (128-d features), a `512-512` projector and `b = 16` bins, so
# `K = 512 / 16 = 32` variables. A copy of the encoder keeps the random initial
# weights as a baseline.

# %%
encoder = keras_imsvd.backbones.small_convnet(input_shape=image_shape)
random_encoder = keras.models.clone_model(encoder)
random_encoder.set_weights(encoder.get_weights())  # the starting point, frozen

model = keras_imsvd.IMSVDModel(encoder, projector="512-512", bin_size=16)
model.build({"view_1": (None, *image_shape), "view_2": (None, *image_shape)})
print(
    f"K = {model.num_variables} variables of b = {model.bin_size} bins, D = {model.embedding_size}"
)
print(f"{model.count_params():,} parameters")

# %% [markdown]
# The optimizer follows the published CIFAR-10 recipe scaled to this data set:
# SGD with momentum 0.9 and weight decay 5e-4, a learning rate of
# `base_lr x batch / 256` with a linear warm-up and a cosine decay
# (`keras_imsvd.optimizers.published_schedule`). `compile` needs no loss: the
# joint cross-entropy is the model's own.

# %%
steps_per_epoch = len(x_train) // 128
schedule = keras_imsvd.optimizers.published_schedule(
    0.2,
    batch_size=128,
    steps_per_epoch=steps_per_epoch,
    epochs=EPOCHS,
    warmup_epochs=min(2, EPOCHS - 1),
)
model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4))

# %% [markdown]
# ## 3. Pretraining
#
# `fit` logs the total loss and its three terms. `KNNMonitor` adds the accuracy of
# a weighted kNN classifier on the held-out images every few epochs, computed from
# the encoder's features of the un-augmented images (the labels are used only
# there, never by the training).

# %%
x_train_eval, _ = keras_imsvd.data.evaluation_arrays(
    (x_train, y_train), image_size=image_shape[:2]
)
x_test_eval, _ = keras_imsvd.data.evaluation_arrays(
    (x_test, y_test), image_size=image_shape[:2]
)
monitor = keras_imsvd.evaluation.KNNMonitor(
    (x_train_eval, y_train), (x_test_eval, y_test), every=1 if QUICK else 5
)
start = time.time()
history = model.fit(dataset, epochs=EPOCHS, callbacks=[monitor], verbose=0)
seconds = time.time() - start
print(f"{EPOCHS} epochs in {seconds:.0f} s on {keras.backend.backend()}")
print("final:", {key: round(values[-1], 4) for key, values in history.history.items()})

# %% [markdown]
# The loss curves. The dashed lines are the floors of each term for `b = 16`
# (`0`, `-log b`, `-2 log b`, and `-3 log b` for the total); see tutorial 1.

# %%
logs = history.history
epochs = np.arange(1, len(logs["loss"]) + 1)
log_b = np.log(model.bin_size)
panels = [
    ("loss", "total L", -3 * log_b),
    ("invariance_loss", "invariance L_inv", 0.0),
    ("diagonal_loss", "diagonal L_dia", -log_b),
    ("off_diagonal_loss", "off-block L_off", -2 * log_b),
]
fig, axes = plt.subplots(1, 5, figsize=(19, 3.3))
for ax, (key, title, floor) in zip(axes, panels):
    ax.plot(epochs, logs[key])
    ax.axhline(floor, color="gray", linestyle="--", linewidth=1)
    ax.set_title(title)
    ax.set_xlabel("epoch")
measured_epochs, accuracies = zip(*monitor.history)
axes[-1].plot(np.array(measured_epochs) + 1, accuracies, marker="o", color="tab:green")
axes[-1].set_title("held-out kNN accuracy")
axes[-1].set_xlabel("epoch")
fig.tight_layout()
plt.show()

# %% [markdown]
# `L_inv` falls as the views of an image come to share their bins, and `L_dia`
# falls as the bins of each variable get used evenly. `L_off` *rises* from its
# floor: at initialisation the codes are nearly uniform, and uniform codes are
# trivially independent (the "uniform codes" case of tutorial 1). As the variables
# start to carry information, some of it is shared between them, and the total
# loss trades a little independence for invariance and bin usage. Over the full
# 50 epochs the held-out kNN accuracy of the encoder's features rises along the
# way (right panel); a quick run has only two points, which can go either way.
#
# ## 4. Evaluation against baselines
#
# Three kinds of features of the same images:
#
# - **IMSVD (learned)**: the pretrained encoder (`model.embed`, the backbone
#   features, not the codes);
# - **random init**: the same encoder at its random initialisation;
# - **raw pixels**: the 8x8 images flattened.
#
# and three protocols: a weighted kNN (`k = 20`, `T = 0.07`, cosine similarity),
# a linear probe on all 1,400 labels, and a linear probe with only 10 labels per
# class, where self-supervised pretraining pays off most.

# %%
rng = np.random.default_rng(0)
few = np.concatenate(
    [
        rng.choice(
            np.flatnonzero(y_train == c),
            size=min(10, np.sum(y_train == c)),
            replace=False,
        )
        for c in range(10)
    ]
)
features = {
    "IMSVD (learned)": (model.embed(x_train_eval), model.embed(x_test_eval)),
    "random init": (
        random_encoder.predict(x_train_eval, verbose=0),
        random_encoder.predict(x_test_eval, verbose=0),
    ),
    "raw pixels": (x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)),
}
results = {}
for name, (train_features, test_features) in features.items():
    results[name] = {
        "kNN": keras_imsvd.evaluation.knn_classify(
            train_features, y_train, test_features, y_test, k=20
        ),
        "linear probe": keras_imsvd.evaluation.linear_probe(
            train_features, y_train, test_features, y_test, epochs=PROBE_EPOCHS
        )["accuracy"],
        "linear probe, 10 labels/class": keras_imsvd.evaluation.linear_probe(
            train_features[few],
            y_train[few],
            test_features,
            y_test,
            epochs=PROBE_EPOCHS,
        )["accuracy"],
    }
columns = list(next(iter(results.values())))
print(f"{'features':18s}" + "".join(f"{c:>32s}" for c in columns))
for name, row in results.items():
    print(f"{name:18s}" + "".join(f"{row[c]:32.3f}" for c in columns))

# %%
fig, ax = plt.subplots(figsize=(9, 3.4))
width = 0.27
for i, name in enumerate(results):
    values = [results[name][c] for c in columns]
    bars = ax.bar(np.arange(len(columns)) + (i - 1) * width, values, width, label=name)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
ax.set_xticks(range(len(columns)), columns)
ax.set_ylim(0.5, 1.1)
ax.set_ylabel("held-out accuracy")
ax.legend(loc="upper center", ncol=3)
fig.tight_layout()
plt.show()

# %% [markdown]
# What pretraining added: the learned features against the same encoder at its
# random initialisation, protocol by protocol.

# %%
for column in columns:
    gain = results["IMSVD (learned)"][column] - results["random init"][column]
    print(f"{column:32s} learned - random init: {gain:+.3f}")
if QUICK:
    print(f"quick mode ({EPOCHS} epochs, {len(x_train)} images): too short to compare")

# %% [markdown]
# After the full 50 epochs the learned features are ahead under every protocol,
# most clearly with 10 labels per class. A quick run stops after two epochs on
# 512 images: its differences are noise, and the learned encoder can come out
# behind its own random initialisation.

# %% [markdown]
# ## 5. Using the trained model
#
# `embed` gives the encoder features for downstream tasks, `discretize` the soft
# codes `(N, K, b)` and `codes` the hard codes `(N, K)`, the most probable bin of
# each variable. The model saves to a single `.keras` file and loads back on any
# backend (tutorial 3).

# %%
print("features:", model.embed(x_test_eval[:4]).shape)
print("soft codes:", model.discretize(x_test_eval[:4]).shape)
print(
    "hard codes of 4 images (first 12 variables):\n",
    model.codes(x_test_eval[:4])[:, :12],
)

path = os.path.join(tempfile.mkdtemp(), "imsvd_digits.keras")
model.save(path)
restored = keras.models.load_model(path)
print(
    "max |embed difference| after reload:",
    np.abs(restored.embed(x_test_eval) - model.embed(x_test_eval)).max(),
)

# %% [markdown]
# ## Summary
#
# - `multiview_dataset(images, views)` yields `{"view_1", "view_2"}` batches for
#   `fit` on every backend.
# - `IMSVDModel(encoder, projector, bin_size)` trains with `compile` + `fit`, no
#   labels, no loss argument.
# - `keras_imsvd.evaluation` measures the frozen features with kNN and linear
#   probes; after a full run on the digits the learned features beat the random
#   initialisation, most clearly with few labels (a quick run is too short to
#   show it).
#
# The same workflow, with checkpoints, resuming and TensorBoard logs, is one
# command: `python train.py` (see the training guide).
