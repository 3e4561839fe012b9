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
# # 5. Looking inside the representation
#
# An IMSVD representation is a set of `K` categorical variables, so it can be
# inspected variable by variable with `keras_imsvd.explain`:
#
# 1. the joint matrix `P` of two views, before and after training;
# 2. redundancy: the mutual information between the variables of one view, before
#    and after training, and without the off-block term `L_off`;
# 3. how each variable uses its bins;
# 4. exemplars: the images that fill each bin of a variable;
# 5. retrieval with the discrete codes alone.
#
# It runs on whatever `KERAS_BACKEND` is set, in a few minutes on a CPU (two small
# models are trained on the bundled digits). **`KERAS_IMSVD_QUICK=1`** trains for
# two epochs only, for CI; the figures are then those of nearly untrained models.

# %%
# The explain figures are plain matplotlib Figures (no pyplot): this registers
# Jupyter's PNG display for them.
# %matplotlib inline
import os
import tempfile
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

import keras_imsvd
from keras_imsvd import explain

QUICK = os.environ.get("KERAS_IMSVD_QUICK") == "1"
EPOCHS = 2 if QUICK else 40
keras.utils.set_random_seed(0)
# fit() says its shuffle argument does not apply to a tf.data.Dataset: the
# pipeline shuffles every epoch itself.
warnings.filterwarnings("ignore", message=".*shuffle=True.*")
print(f"keras {keras.__version__}, backend {keras.backend.backend()}, quick={QUICK}")

# %% [markdown]
# ## Two models on the digits
#
# The setting of tutorial 2: a small convnet, a `512-512` projector and `b = 16`
# bins, so `K = 32` variables. Besides the IMSVD model, a second one is trained
# with `off_diagonal_weight=0`: everything the same except the term that asks for
# independent variables. It is the fair reference for redundancy. An untrained
# copy of the first model gives the "before" pictures.

# %%
(x_train, y_train), (x_test, y_test) = keras_imsvd.data.load_digits_split()
views = keras_imsvd.augment.digits_views(seed=0)
train_views = keras_imsvd.data.multiview_dataset(x_train, views, batch_size=128, seed=0)
# Held-out images: un-augmented at the view size, and as two-view batches.
test_images, _ = keras_imsvd.data.evaluation_arrays((x_test, y_test), image_size=16)
train_images, _ = keras_imsvd.data.evaluation_arrays((x_train, y_train), image_size=16)
test_views = keras_imsvd.data.multiview_dataset(
    x_test, views, batch_size=128, shuffle=False, drop_remainder=False, seed=1
)


def make_model(off_diagonal_weight=1.0, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras_imsvd.IMSVDModel(
        keras_imsvd.backbones.small_convnet(),
        projector="512-512",
        bin_size=16,
        off_diagonal_weight=off_diagonal_weight,
    )
    model.build({"view_1": (None, 16, 16, 1), "view_2": (None, 16, 16, 1)})
    return model


def train(model):
    schedule = keras_imsvd.optimizers.published_schedule(
        0.2,
        batch_size=128,
        steps_per_epoch=len(x_train) // 128,
        epochs=EPOCHS,
        warmup_epochs=min(2, EPOCHS - 1),
    )
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=5e-4)
    )
    return model.fit(train_views, epochs=EPOCHS, verbose=0).history


model = make_model()
untrained = make_model()
untrained.set_weights(model.get_weights())  # the starting point, kept aside
history = train(model)
reference = make_model(off_diagonal_weight=0.0)
reference_history = train(reference)
for name, h in (("IMSVD", history), ("without L_off", reference_history)):
    print(f"{name:14s}" + "  ".join(f"{k} {v[-1]:+.3f}" for k, v in sorted(h.items())))

# %% [markdown]
# Without `L_off` the model is not asked for independent variables: its
# `off_diagonal_loss` (measured, not optimised) stays well above the IMSVD
# model's.
#
# ## 1. The joint matrix of two views
#
# `explain.joint_probability_matrix` accumulates `P` over a whole two-view
# dataset, here the 397 held-out images, each with two random views; `variables=`
# keeps only the blocks of a few variables. `plot_joint_matrix` draws them with
# the colour scale clipped at `1/b`, the value of a diagonal entry of an ideal
# model.

# %%
shown = list(range(4))
P_before = explain.joint_probability_matrix(untrained, test_views, variables=shown)
P_after = explain.joint_probability_matrix(model, test_views, variables=shown)
print("P:", P_after.shape, " each block sums to", np.round(P_after[:16, :16].sum(), 6))
display(explain.plot_joint_matrix(P_before, bin_size=16, title="before training"))
display(explain.plot_joint_matrix(P_after, bin_size=16, title="after training"))

# %% [markdown]
# Before training, every block is a blur: the codes are nearly uniform and the two
# views are unrelated. After training, each diagonal block shows a sharp diagonal:
# the two views of an image fall into the same bin of a variable, and all bins
# are used. The off-diagonal blocks are more spread out, but not flat: their
# bright spots are pairs of bins of two different variables that tend to go
# together. Ten classes of digits are described by 32 variables, so the variables
# share part of their information; section 2 measures how much.
#
# `mutual_information_matrix` reduces each block to a number, in nats: on the
# diagonal, how much of a variable the two views share; off the diagonal, how
# much two different variables share across the views.

# %%
for name, P in (("before", P_before), ("after", P_after)):
    mi = explain.mutual_information_matrix(P, bin_size=16)
    off = mi[~np.eye(len(mi), dtype=bool)]
    print(
        f"{name:7s} shared between views {np.diag(mi).mean():.3f} nats, "
        f"between different variables {off.mean():.3f} nats (max log 16 = {np.log(16):.3f})"
    )

# %% [markdown]
# ## 2. Redundancy between variables
#
# `redundancy_matrix` is the `K x K` mutual information between the variables of
# one view, with each variable's entropy on the diagonal. Raw nats are misleading
# across models: an untrained model's near-uniform soft codes carry almost no
# information, so they share almost none. `normalize_redundancy` divides each
# entry by the smaller of the two entropies: the share of a variable's information
# that another one repeats.

# %%
rows = []
matrices = {}
for name, m in (
    ("untrained", untrained),
    ("without L_off", reference),
    ("IMSVD", model),
):
    redundancy = explain.redundancy_matrix(m, test_images)
    share = explain.normalize_redundancy(redundancy)
    off_diagonal = ~np.eye(len(redundancy), dtype=bool)
    matrices[name] = redundancy
    rows.append(
        (
            name,
            np.diag(redundancy).mean(),
            redundancy[off_diagonal].mean(),
            share[off_diagonal].mean(),
        )
    )
print(f"{'model':15s}{'entropy/variable':>18s}{'mean MI':>10s}{'mean MI / min H':>17s}")
for name, entropy, mi, share in rows:
    print(f"{name:15s}{entropy:18.3f}{mi:10.3f}{share:17.3f}")

# %%
display(
    explain.plot_redundancy(
        matrices["IMSVD"],
        reference=matrices["without L_off"],
        titles=("without L_off", "IMSVD"),
        normalize=True,
    )
)

# %% [markdown]
# Without `L_off`, the variables carry much less information each (their entropy
# falls far below `log 16 = 2.77`: many images share a few bins) and repeat a
# larger share of each other's. With it, the IMSVD variables stay close to
# `log 16` and repeat a smaller share: the off-block term is what makes the
# features non-redundant. In nats, the IMSVD model's variables share more, simply
# because they hold more; the normalised figures are the fair comparison.
#
# ## 3. Bin usage
#
# `variable_statistics` summarises every variable: the entropy of its bin usage
# (`L_dia` asks for the maximum, `log b`), the bins used as a hard code, the
# confidence of its codes and, with labels, the mutual information between the
# variable and the class.

# %%
statistics = explain.variable_statistics(model, test_images, labels=y_test)
summary = statistics["summary"]
for key in (
    "bits_per_image",
    "mean_normalized_entropy",
    "mean_bins_used",
    "num_dead_bins",
    "num_collapsed_variables",
    "mean_confidence",
    "mean_label_mutual_information",
    "most_informative_variables",
):
    value = summary[key]
    print(
        f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}"
    )
display(explain.plot_bin_usage(statistics))

# %% [markdown]
# ## 4. Exemplars per bin
#
# A variable partitions the images into `b` bins. `plot_exemplars` shows, for each
# bin in use, the held-out images with the highest probability of that bin. Here
# the variable that tells most about the class:

# %%
variable = summary["most_informative_variables"][0]
print(
    f"variable {variable}: {statistics['variables'][variable]['label_mutual_information']:.3f} nats about the class"
)
display(explain.plot_exemplars(model, test_images, variable=variable, top=8))

# %% [markdown]
# Bins tend to gather one digit, or one way of writing it. No label was used in
# training: the grouping comes from asking the two views of an image to agree
# while using every bin and keeping variables independent.
#
# ## 5. Retrieval with discrete codes
#
# The hard code of an image (`model.codes`) is the most probable bin of each of
# its 32 variables: `32 x 4 = 128` bits. `CodeIndex` retrieves the indexed images
# whose codes agree with a query on the most variables.

# %%
train_codes = model.codes(train_images)
test_codes = model.codes(test_images)
index = explain.CodeIndex(train_codes, y_train, bin_size=16)
packed = explain.pack_codes(train_codes, bin_size=16)
print(
    f"{index.bits_per_image} bits per image; {len(index)} images packed in {packed.nbytes:,} bytes"
)

similarities, neighbours = index.query(test_codes[:6], k=8)
fig, axes = plt.subplots(6, 9, figsize=(9, 6.4))
for row in range(6):
    axes[row, 0].imshow(test_images[row, ..., 0], cmap="gray")
    axes[row, 0].set_title("query", fontsize=8)
    for col in range(8):
        j = neighbours[row, col]
        axes[row, col + 1].imshow(train_images[j, ..., 0], cmap="gray")
        axes[row, col + 1].set_title(f"{similarities[row, col]}/32", fontsize=8)
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("nearest training images by code (number of agreeing variables)")
fig.tight_layout()
plt.show()

# %% [markdown]
# How good are 128 bits per image? A kNN vote over the codes, against the same vote
# over the 128 floating-point features of the encoder (32 bits each, 4,096 bits
# per image):

# %%
code_accuracy = index.accuracy(test_codes, y_test, k=20)
feature_accuracy = keras_imsvd.evaluation.knn_classify(
    model.embed(train_images), y_train, model.embed(test_images), y_test, k=20
)
print(f"kNN on hard codes (128 bits):          {code_accuracy:.3f}")
print(f"kNN on encoder features (4,096 bits): {feature_accuracy:.3f}")

# %% [markdown]
# ## Everything at once
#
# `save_explain_report` writes all of these figures and an `explain.json` of the
# numbers to a folder; `python train.py --explain` calls it at the end of a run.

# %%
report_dir = tempfile.mkdtemp(prefix="imsvd_explain_")
files = explain.save_explain_report(
    model,
    test_images,
    y_test,
    multiview_ds=test_views,
    output_dir=report_dir,
    reference=reference,
)
for name, path in sorted(files.items()):
    print(f"{name:24s} {os.path.basename(path)}")

# %% [markdown]
# ## Summary
#
# - The joint matrix shows training at work: sharp diagonals in the diagonal
#   blocks (invariance, all bins used), spread-out off-diagonal blocks.
# - `L_off` lowers the redundancy between variables, in nats and as a share of
#   their information.
# - Each variable is a learned partition of the images, often readable through
#   its exemplars, and the discrete codes alone support retrieval.
