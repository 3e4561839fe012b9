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
# # 1. Soft variable discretization and the joint cross-entropy
#
# IMSVD turns the output of a network into **K categorical variables** and trains
# the network so that the two augmented views of an image fall into the same bins,
# the bins are all used, and different variables carry different information.
# This notebook builds every piece by hand with NumPy, on vectors small enough to
# read, and checks each against the library:
#
# 1. from a vector to K soft categorical variables (temperature, bin size);
# 2. the joint probability matrix `P` of two views;
# 3. the three loss terms `L_inv`, `L_dia`, `L_off`, step by step, against
#    `keras_imsvd.losses.joint_cross_entropy`;
# 4. why the three terms together give invariant, non-trivial and non-redundant
#    features: the collapsed codes each term rules out.
#
# It runs in seconds on any Keras backend (`KERAS_BACKEND` is left as you set it).
# **`KERAS_IMSVD_QUICK=1`**, read by every tutorial to shrink data and epochs for
# CI, only shrinks the random sample behind the temperature curves here.

# %%
import os

import keras
import matplotlib.pyplot as plt
import numpy as np

import keras_imsvd

QUICK = os.environ.get("KERAS_IMSVD_QUICK") == "1"
np.set_printoptions(precision=4, suppress=True)
print(f"keras {keras.__version__}, backend {keras.backend.backend()}, quick={QUICK}")

# %% [markdown]
# ## 1. From a vector to K categorical variables
#
# The projector outputs a vector `z` of size `D = K * b`. IMSVD reads it as `K`
# groups of `b` logits and turns each group into a distribution over `b` bins:
#
# $$p_k = \max\left(\operatorname{softmax}(z_k / t), \epsilon\right), \qquad k = 1, \dots, K$$
#
# with temperature `t` (1.0 by default) and `epsilon = 1e-8`. The clamp comes
# after the softmax and the result is not renormalised, as in the published code,
# so a row sums to 1 up to `b * epsilon`.
#
# Here `D = 12` and `b = 4`, so there are `K = 3` variables.

# %%
rng = np.random.default_rng(0)
bin_size = 4
z = rng.normal(size=(1, 12)).astype("float32")  # one sample, D = 12


def softmax(logits, axis=-1):
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def soft_codes(z, bin_size, temperature=1.0, epsilon=1e-8):
    """NumPy transcription of SoftVariableDiscretization: (N, D) -> (N, K, b)."""
    logits = z.reshape(z.shape[0], -1, bin_size)  # (N, K, b)
    return np.maximum(softmax(logits / temperature), epsilon)


p_numpy = soft_codes(z, bin_size)
print("z as K=3 groups of b=4 logits:\n", z.reshape(3, 4))
print("soft codes p (each row a distribution over 4 bins):\n", p_numpy[0])
print("row sums:", p_numpy[0].sum(axis=-1))

# %% [markdown]
# The library's layer does the same thing, on whatever backend is active:

# %%
layer = keras_imsvd.layers.SoftVariableDiscretization(bin_size=4)
p_layer = keras.ops.convert_to_numpy(layer(z))
print("output shape:", p_layer.shape)
print("max |layer - numpy|:", np.abs(p_layer - p_numpy).max())

# %% [markdown]
# ### Temperature
#
# The temperature sets how sharp the codes are. A low temperature pushes each
# variable towards a one-hot code (a hard bin); a high one towards the uniform
# distribution. The left panel shows one variable with `b = 8` logits; the right
# panel the mean entropy of the codes of random Gaussian logits, divided by
# `log b` (1 = uniform, 0 = one-hot), for three bin sizes.

# %%
logits = np.array([[2.0, 1.2, 0.8, 0.3, 0.0, -0.4, -1.0, -1.5]], "float32")
temperatures = [0.25, 1.0, 4.0]
samples = 200 if QUICK else 5000

fig, (ax_bars, ax_curve) = plt.subplots(1, 2, figsize=(11, 3.6))
width = 0.27
for i, t in enumerate(temperatures):
    probabilities = soft_codes(logits, 8, temperature=t)[0, 0]
    ax_bars.bar(np.arange(8) + (i - 1) * width, probabilities, width, label=f"t = {t}")
ax_bars.set_xlabel("bin")
ax_bars.set_ylabel("probability")
ax_bars.set_title("one variable, b = 8")
ax_bars.legend()

grid = np.geomspace(0.05, 20, 40)
for b in (4, 16, 64):
    z_random = rng.normal(size=(samples, b)).astype("float32")
    curve = []
    for t in grid:
        p = soft_codes(z_random, b, temperature=t)[:, 0]
        entropy = -(p * np.log(p)).sum(-1).mean()
        curve.append(entropy / np.log(b))
    ax_curve.semilogx(grid, curve, label=f"b = {b}")
ax_curve.axvline(1.0, color="gray", linestyle="--", linewidth=1)
ax_curve.set_xlabel("temperature t")
ax_curve.set_ylabel("entropy / log b")
ax_curve.set_title("sharpness of codes of N(0, 1) logits")
ax_curve.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Bin size
#
# With `D` fixed, the bin size trades the number of variables for their
# resolution: `D = 1024` gives `K = 32` variables of `b = 32` bins (the published
# CIFAR-10 setting), or `K = 256` variables of `b = 4` bins. Each variable can
# hold at most `log b` nats, so `K log b` nats in all: fewer, larger variables
# hold less in total but each is a finer quantisation. The bin size also sets the
# scale of the loss: the bounds below are `0`, `-log b` and `-2 log b`.
#
# At the start of training the logits are small and every code is close to
# uniform (curves above, near t = 1 for small logits); training makes them sharp.

# %%
for b in (4, 16, 32, 80):
    print(
        f"b = {b:3d}: K = {1024 // b:4d} variables for D = 1024, "
        f"log b = {np.log(b):.3f}, bound of the loss -3 log b = {-3 * np.log(b):.3f}"
    )

# %% [markdown]
# ## 2. The joint probability matrix of two views
#
# Take a batch of `N` images and their two views, with soft codes `p1` and `p2`
# of shape `(N, K, b)`. Flatten each code into a vector of size `D` and average
# the outer products over the batch:
#
# $$P = \frac{1}{N} \sum_{n=1}^{N} \operatorname{vec}(p^1_n)\, \operatorname{vec}(p^2_n)^\top \in \mathbb{R}^{D \times D}$$
#
# `P` is made of `K x K` blocks of size `b x b`. Block `(k, l)` is the estimated
# joint distribution of variable `k` in view 1 and variable `l` in view 2 (the
# probability that view 1 falls in bin `i` of variable `k` *and* view 2 in bin
# `j` of variable `l`), so each block sums to 1.
#
# A small example: `N = 6` images, `K = 2` variables, `b = 3` bins. The second
# view is the first plus noise, as an augmentation would do.

# %%
N, K, b = 6, 2, 3
D = K * b
z1 = rng.normal(size=(N, D)).astype("float32") * 2.0
z2 = z1 + 0.5 * rng.normal(size=(N, D)).astype("float32")
p1 = soft_codes(z1, b).astype("float64")  # (N, K, b)
p2 = soft_codes(z2, b).astype("float64")

flat1 = p1.reshape(N, D)  # (N, D)
flat2 = p2.reshape(N, D)  # (N, D)
P = flat1.T @ flat2 / N  # (D, D)
blocks = P.reshape(K, b, K, b).transpose(0, 2, 1, 3)  # (K, K, b, b): block (k, l)
print("P =\n", P)
print("sum of each block (k, l):\n", blocks.sum(axis=(2, 3)))


# %%
def show_joint(P, bin_size, ax, title):
    """Heatmap of P with the block boundaries drawn."""
    image = ax.imshow(P, cmap="viridis", vmin=0)
    for edge in np.arange(bin_size, P.shape[0], bin_size) - 0.5:
        ax.axhline(edge, color="white", linewidth=1.5)
        ax.axvline(edge, color="white", linewidth=1.5)
    ax.set_title(title)
    ax.set_xlabel("view 2: (variable, bin)")
    ax.set_ylabel("view 1: (variable, bin)")
    return image


fig, ax = plt.subplots(figsize=(4.2, 3.6))
fig.colorbar(show_joint(P, b, ax, "P: K x K blocks of b x b"), ax=ax)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. The three loss terms, step by step
#
# **Invariance.** For each image and each variable, `sum_j p1[n,k,j] p2[n,k,j]`
# is the probability that the two views land in the same bin when each is drawn
# from its code. The invariance term is the mean negative log of it:
#
# $$\mathcal{L}_{inv} = -\frac{1}{NK} \sum_{n=1}^{N} \sum_{k=1}^{K} \log \sum_{j=1}^{b} p^1_{n,k,j}\, p^2_{n,k,j}$$

# %%
agreement = (p1 * p2).sum(axis=-1)  # (N, K)
L_inv = -np.log(agreement).mean()
print("agreement per image and variable:\n", agreement)
print(f"L_inv = {L_inv:.6f}")

# %% [markdown]
# **Diagonal.** The `D` diagonal entries of `P` are the probabilities that both
# views fall in bin `j` of variable `k`. Their negative entropy, per variable:
#
# $$\mathcal{L}_{dia} = \frac{1}{K} \sum_{i=1}^{D} P_{ii} \log P_{ii}$$
#
# Only the diagonal is needed, and it is the batch mean of `p1 * p2`; the library
# never forms `P` for this term.

# %%
diagonal = np.diag(P)  # (D,)
L_dia = (diagonal * np.log(diagonal)).sum() / K
print("diag(P):           ", diagonal)
print("mean over n of p1*p2:", (p1 * p2).mean(axis=0).reshape(-1))
print(f"L_dia = {L_dia:.6f}")

# %% [markdown]
# **Off-block.** The blocks `(k, l)` with `k != l` hold the joint distributions of
# two *different* variables. Their negative entropies, averaged over the
# `K (K - 1)` ordered pairs:
#
# $$\mathcal{L}_{off} = \frac{1}{K(K-1)} \sum_{k \neq l} \sum_{i,j} P^{(k,l)}_{ij} \log P^{(k,l)}_{ij}$$
#
# The entries inside the diagonal blocks but off their diagonal enter no term.

# %%
off_blocks = [blocks[k, m] for k in range(K) for m in range(K) if k != m]
L_off = sum((block * np.log(block)).sum() for block in off_blocks) / (K * (K - 1))
# The library's way: P log P over the whole matrix minus the diagonal blocks.
within = np.einsum("nkb,nkc->kbc", p1, p2) / N  # (K, b, b)
L_off_library_way = ((P * np.log(P)).sum() - (within * np.log(within)).sum()) / (
    K * (K - 1)
)
print(
    f"L_off = {L_off:.6f}  (whole matrix minus diagonal blocks: {L_off_library_way:.6f})"
)

# %% [markdown]
# The total is `L = w_inv L_inv + w_dia L_dia + w_off L_off`, all weights 1 by
# default. Now the library, on the active backend (in float32):

# %%
total, terms = keras_imsvd.losses.joint_cross_entropy(
    p1.astype("float32"), p2.astype("float32")
)
by_hand = {"invariance_loss": L_inv, "diagonal_loss": L_dia, "off_diagonal_loss": L_off}
for name, value in by_hand.items():
    library = float(keras.ops.convert_to_numpy(terms[name]))
    print(
        f"{name:18s} by hand {value:+.6f}   library {library:+.6f}   diff {abs(library - value):.1e}"
    )
print(
    f"{'total':18s} by hand {sum(by_hand.values()):+.6f}   "
    f"library {float(keras.ops.convert_to_numpy(total)):+.6f}"
)

# %% [markdown]
# ## 4. Why three terms
#
# Each term has a floor, reached only by a particular kind of code (for
# `b >= 3`):
#
# - `L_inv >= 0`, reached when both views put each variable in the same bin with
#   certainty;
# - `L_dia >= -log b`, reached when, in addition, each variable uses its `b` bins
#   equally often over the batch (maximum entropy of its marginal);
# - `L_off >= -2 log b`, reached when every pair of different variables is
#   uniform and independent: `H(X, Y) = H(X) + H(Y) - I(X; Y)` is largest,
#   `2 log b`, when both are uniform and the mutual information `I(X; Y)` is 0.
#
# So `L >= -3 log b`. Each term alone has a trivial minimiser, which another term
# rules out. Below, `N = 16` images, `K = 2` variables, `b = 4` bins, with codes
# built by hand:
#
# | case | what the codes do | the term that objects |
# |---|---|---|
# | ideal | identical one-hot views, the 16 images cover all 4 x 4 bin pairs | none: `L = -3 log b` |
# | constant | every image in bin 0 of every variable (collapse) | `L_dia` (and `L_off`) |
# | disagreeing views | view 2 one bin to the right of view 1 | `L_inv` |
# | identical variables | variable 2 a copy of variable 1 (redundancy) | `L_off` |
# | uniform codes | every bin at probability 1/b (no decision) | `L_inv`, `L_dia` |

# %%
N, K, b = 16, 2, 4
eps = 1e-8
n = np.arange(N)
first, second = n % b, n // b  # together, all 16 pairs of bins


def one_hot_codes(bins):
    """(N, K) bin indices -> clamped one-hot soft codes (N, K, b)."""
    return np.maximum(np.eye(b)[bins], eps)


cases = {
    "ideal": (np.stack([first, second], 1), np.stack([first, second], 1)),
    "constant": (np.zeros((N, K), int), np.zeros((N, K), int)),
    "disagreeing views": (
        np.stack([first, second], 1),
        np.stack([(first + 1) % b, (second + 1) % b], 1),
    ),
    "identical variables": (np.stack([first, first], 1), np.stack([first, first], 1)),
}
codes = {
    name: (one_hot_codes(v1), one_hot_codes(v2)) for name, (v1, v2) in cases.items()
}
uniform = np.full((N, K, b), 1.0 / b)
codes["uniform codes"] = (uniform, uniform)

results = {}
for name, (c1, c2) in codes.items():
    _, terms = keras_imsvd.losses.joint_cross_entropy(
        c1.astype("float32"), c2.astype("float32")
    )
    results[name] = {k: float(keras.ops.convert_to_numpy(v)) for k, v in terms.items()}

bounds = {
    "invariance_loss": 0.0,
    "diagonal_loss": -np.log(b),
    "off_diagonal_loss": -2 * np.log(b),
}
print(
    f"bounds for b = {b}: L_inv >= 0, L_dia >= {-np.log(b):.3f}, L_off >= {-2 * np.log(b):.3f}, L >= {-3 * np.log(b):.3f}\n"
)
print(f"{'case':20s}{'L_inv':>10s}{'L_dia':>10s}{'L_off':>10s}{'L':>10s}")
for name, r in results.items():
    values = [r["invariance_loss"], r["diagonal_loss"], r["off_diagonal_loss"]]
    values.append(sum(values))
    print(f"{name:20s}" + "".join(f"{round(v, 3) + 0.0:10.3f}" for v in values))

# %% [markdown]
# Reading the table:
#
# - **constant codes** make the views agree perfectly (`L_inv = 0`) but carry no
#   information: `L_dia = 0` instead of `-log 4 = -1.386`, and `L_off = 0`
#   instead of `-2.773`. This is the collapse that every self-supervised method
#   must prevent; here the entropy terms do it.
# - **disagreeing views** use all bins uniformly and independently, so `L_dia`
#   sees nothing on the diagonal and `L_off` is perfect, but the views never
#   share a bin: `L_inv` is huge, `-log(2 epsilon)`, since the only agreement left
#   comes from the clamp of the codes at `epsilon`.
# - **identical variables** are invariant and spread, so `L_inv` and `L_dia` are
#   perfect, but the two variables are copies: block `(1, 2)` is diagonal, its
#   entropy `log 4` instead of `2 log 4`, and `L_off` is `log 4` above its floor.
#   This is what makes the features non-redundant.
# - **uniform codes** are perfectly "independent" (`L_off` at its floor) but every
#   bin is equally likely, for every image: `L_inv = log b` because two uniform
#   draws agree with probability `1/b`.
#
# The joint matrices show the same at a glance:

# %%
fig, axes = plt.subplots(1, 5, figsize=(19, 3.8))
for ax, (name, (c1, c2)) in zip(axes, codes.items()):
    P_case = c1.reshape(N, -1).T @ c2.reshape(N, -1) / N
    show_joint(P_case, b, ax, name)
fig.tight_layout()
plt.show()

# %%
names = list(results)
fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
titles = {
    "invariance_loss": "L_inv",
    "diagonal_loss": "L_dia",
    "off_diagonal_loss": "L_off",
}
for ax, (key, title) in zip(axes, titles.items()):
    values = [min(results[name][key], 5.0) for name in names]  # clip the huge L_inv
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.axhline(bounds[key], color="tab:red", linestyle="--", label="floor")
    ax.set_xticks(range(len(names)), names, rotation=25, ha="right")
    ax.set_title(title + (" (clipped at 5)" if key == "invariance_loss" else ""))
    ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - `SoftVariableDiscretization` reshapes a `D`-vector into `K` variables of `b`
#   bins and applies a clamped softmax; the temperature sets the sharpness.
# - The joint matrix `P` of two views is a `K x K` grid of `b x b` joint
#   distributions, estimated over the batch.
# - `L_inv` makes the views agree (invariance), `L_dia` makes each variable use
#   all its bins (non-trivial), and `L_off` makes different variables independent
#   (non-redundant). Their floors add up to `-3 log b`.
#
# Next: tutorial 2, `02_pretrain_and_evaluate`, trains a model with this loss.
