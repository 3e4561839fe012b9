"""Figures of the joint matrix, redundancy and bin usage.

Every function returns a `matplotlib.figure.Figure` built without `pyplot`: it
never opens a window or calls `plt.show()`, works headless (Agg), and is shown
once by Jupyter. Save it with `fig.savefig("name.png")`. The exemplar grid,
`plot_exemplars`, lives beside `exemplars`.
"""

import numpy as np

from keras_imsvd.explain._codes import check_joint_matrix
from keras_imsvd.explain._codes import check_variables
from keras_imsvd.explain.mutual_information import normalize_redundancy
from keras_imsvd.explain.mutual_information import redundancy_matrix

_DEFAULT_BLOCKS = 5


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "keras_imsvd.explain figures need matplotlib: pip install matplotlib"
        ) from None
    return Figure(**kwargs)


def _colormap(name, bad="#d9d9d9"):
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad=bad)


def plot_joint_matrix(
    P, variables=None, bin_size=None, vmax=None, gamma=0.5, title=None
):
    """Heat map of the first blocks of the joint probability matrix.

    The published view of `P`: a few variables' b x b blocks, with block
    boundaries drawn. A well-trained model shows a bright diagonal in each
    diagonal block (both views fall into the same bin, every bin used, each
    diagonal entry near `1/b`) and flat off-diagonal blocks (independent
    variables, every entry near `1/b^2`); bright spots off the diagonal blocks
    are pairs of bins of different variables that go together (redundancy).

    The colour scale is clipped at `vmax = 1/b`, the value of a diagonal
    entry of an ideal model (entries above saturate), and compressed by a
    power `gamma` so that the `1/b^2` level of the off-diagonal blocks, tiny
    on a linear scale for large b, stays visible: with `gamma = 0.5` it sits
    at `1/sqrt(b)` of the scale.

    Args:
        P: A joint matrix `(V b, V b)` from `joint_probability_matrix`.
        variables: Indices of the blocks of `P` to show, or `None` for the
            first five (all, if `P` holds fewer). Defaults to `None`.
        bin_size: Bins per variable, or `None` to read it from `P` (each block
            sums to 1). Defaults to `None`.
        vmax: Top of the colour scale, or `None` for `1 / b`. Defaults to
            `None`.
        gamma: Power of the colour scale (`1.0`: linear). Defaults to `0.5`.
        title: Figure title, or `None` for a default one. Defaults to `None`.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    ```python
    from keras_imsvd import explain
    P = explain.joint_probability_matrix(model, multiview_ds, variables=range(5))
    explain.plot_joint_matrix(P).savefig("joint_matrix.png")
    ```
    """
    P, bin_size, num_blocks = check_joint_matrix(P, bin_size)
    if variables is None:
        variables = range(min(_DEFAULT_BLOCKS, num_blocks))
    selected = check_variables(variables, num_blocks)
    rows = np.concatenate(
        [np.arange(k * bin_size, (k + 1) * bin_size) for k in selected]
    )
    shown = P[np.ix_(rows, rows)]
    if vmax is None:
        vmax = 1.0 / bin_size
    from matplotlib.colors import PowerNorm

    figure = _figure(figsize=(6.4, 5.4), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(
        shown,
        cmap="magma",
        norm=PowerNorm(gamma, vmin=0.0, vmax=vmax),
        interpolation="nearest",
    )
    for boundary in range(1, len(selected)):
        position = boundary * bin_size - 0.5
        axes.axhline(position, color="tab:cyan", linewidth=0.8)
        axes.axvline(position, color="tab:cyan", linewidth=0.8)
    centres = np.arange(len(selected)) * bin_size + (bin_size - 1) / 2
    axes.set_xticks(centres, [str(k) for k in selected])
    axes.set_yticks(centres, [str(k) for k in selected])
    axes.set_xlabel(f"view 2: variable (blocks of {bin_size} bins)")
    axes.set_ylabel(f"view 1: variable (blocks of {bin_size} bins)")
    if title is None:
        shown_variables = ", ".join(str(k) for k in selected)
        title = f"Joint probability matrix P, variables {shown_variables}"
    axes.set_title(title)
    bar = figure.colorbar(image, ax=axes, extend="max")
    uniform = 1.0 / bin_size**2
    if uniform < vmax:
        bar.ax.axhline(uniform, color="tab:cyan", linewidth=1.5)
    bar.set_label(
        f"P (power {gamma:g} scale, clipped at {vmax:.3g})\n"
        f"cyan line: 1/b² = {uniform:.3g}, independent uniform variables"
    )
    return figure


def _redundancy_of(source, images, variables, batch_size):
    if not hasattr(source, "discretize"):
        array = np.asarray(source)
        if array.ndim == 2:  # a precomputed (V, V) matrix
            if array.shape[0] != array.shape[1]:
                raise ValueError(
                    "A precomputed redundancy matrix must be square. "
                    f"Received: shape={array.shape}"
                )
            return array.astype("float64")
    return redundancy_matrix(source, images, variables=variables, batch_size=batch_size)


def plot_redundancy(
    model_or_codes,
    images=None,
    reference=None,
    variables=None,
    batch_size=256,
    titles=("reference", "model"),
    normalize=False,
):
    """K x K mutual information between the variables of one view.

    Shows `redundancy_matrix`: entry `(k, l)` is the mutual information (nats)
    between variables k and l of the same image, estimated from
    `P^(k,l) = mean_n p[n, k] p[n, l]^T`. The diagonal (a variable with
    itself) is masked in grey. The off-block term of the loss drives this
    towards 0; with `reference` both matrices are drawn side by side on one
    colour scale, which shows what training did. Mind the reference: a freshly
    initialised model has near-uniform soft codes, whose mutual information is
    near 0 only because they carry no information at all; a model trained
    without the off-block term (`off_diagonal_weight=0`) shows what that term
    removes.

    Args:
        model_or_codes: An `IMSVDModel`, soft codes `(N, K, b)`, or a
            precomputed `(K, K)` matrix from `redundancy_matrix`.
        images: Images for the model(s), `None` with codes. Defaults to `None`.
        reference: A second model, codes or matrix, drawn on the left, or
            `None`. Defaults to `None`.
        variables: Indices of the variables to show, or `None` for all.
            Defaults to `None`.
        batch_size: Inference batch size. Defaults to `256`.
        titles: Titles of the reference and model panels. Defaults to
            `("reference", "model")`.
        normalize: Whether to draw `MI_kl / min(H_k, H_l)` (see
            `normalize_redundancy`), a share in [0, 1] that compares models
            whose variables carry different amounts of information, instead of
            nats. Defaults to `False`.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    ```python
    from keras_imsvd import explain
    initial_codes = model.discretize(images)  # before fit
    model.fit(multiview_ds, epochs=100)
    explain.plot_redundancy(model, images, reference=initial_codes)
    ```
    """
    matrices = [_redundancy_of(model_or_codes, images, variables, batch_size)]
    names = [titles[1]]
    if reference is not None:
        matrices.insert(0, _redundancy_of(reference, images, variables, batch_size))
        names.insert(0, titles[0])
    entropies = [np.diag(matrix) for matrix in matrices]
    if normalize:
        matrices = [normalize_redundancy(matrix) for matrix in matrices]
    masked = []
    for matrix in matrices:
        matrix = matrix.copy()
        np.fill_diagonal(matrix, np.nan)
        masked.append(matrix)
    off_diagonal = np.concatenate([m[np.isfinite(m)] for m in masked])
    vmax = float(off_diagonal.max()) if off_diagonal.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    width = 5.2 * len(masked) + 0.8
    figure = _figure(figsize=(width, 4.8), layout="constrained")
    axes_list = figure.subplots(1, len(masked), squeeze=False)[0]
    colormap = _colormap("viridis")
    unit = "/ min H" if normalize else "nats"
    for axes, matrix, name, entropy in zip(axes_list, masked, names, entropies):
        image = axes.imshow(
            matrix, cmap=colormap, vmin=0.0, vmax=vmax, interpolation="nearest"
        )
        values = matrix[np.isfinite(matrix)]
        mean = float(values.mean()) if values.size else 0.0
        axes.set_title(
            f"{name}: mean off-diagonal MI {mean:.3g} {unit}\n"
            f"(mean entropy of a variable {float(np.mean(entropy)):.3g} nats)",
            fontsize=10,
        )
        axes.set_xlabel("variable l")
        axes.set_ylabel("variable k")
    bar = figure.colorbar(image, ax=list(axes_list))
    label = "I(k; l) / min(H(k), H(l))" if normalize else "I(k; l) (nats)"
    bar.set_label(f"mutual information within a view: {label}")
    return figure


def plot_bin_usage(statistics):
    """Bin usage and entropy of every variable, from `variable_statistics`.

    Top: the normalised entropy of each variable's mean distribution and the
    fraction of its bins used as a hard code (1 for both: every bin used
    evenly, as the diagonal term asks). Bottom: for each variable (column) and
    bin (row), the share of images coded in that bin times b (1: uniform use;
    0: a dead bin).

    Args:
        statistics: The dict returned by `variable_statistics`.

    Returns:
        A `matplotlib.figure.Figure`.

    Example:

    ```python
    from keras_imsvd import explain
    stats = explain.variable_statistics(model, images)
    explain.plot_bin_usage(stats).savefig("bin_usage.png")
    ```
    """
    if not isinstance(statistics, dict) or "variables" not in statistics:
        raise TypeError(
            "`statistics` must be the dict returned by variable_statistics(). "
            f"Received: {type(statistics).__name__}"
        )
    entries = statistics["variables"]
    counts = np.array([entry["bin_counts"] for entry in entries], dtype="float64")
    num_variables, bin_size = counts.shape
    usage = counts / counts.sum(axis=1, keepdims=True) * bin_size  # (K, b)
    entropy = [entry["normalized_entropy"] for entry in entries]
    used = [entry["bins_used"] / bin_size for entry in entries]
    positions = np.arange(num_variables)
    figure = _figure(
        figsize=(max(6.4, 0.12 * num_variables + 3), 6.4), layout="constrained"
    )
    top_axes, bottom_axes = figure.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    top_axes.bar(positions, entropy, color="tab:blue", label="entropy / log b")
    top_axes.plot(
        positions,
        used,
        "o",
        color="tab:orange",
        markersize=3,
        label="fraction of bins used",
    )
    top_axes.set_ylim(0, 1.3)
    top_axes.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    top_axes.set_ylabel("fraction")
    top_axes.legend(loc="upper center", ncols=2, fontsize=8, frameon=False)
    summary = statistics.get("summary", {})
    top_axes.set_title(
        f"{num_variables} variables x {bin_size} bins: "
        f"{summary.get('num_dead_bins', int((counts == 0).sum()))} dead bins, "
        f"mean entropy {np.mean(entropy):.2f} log b"
    )
    image = bottom_axes.imshow(
        usage.T,
        aspect="auto",
        cmap="viridis",
        vmin=0.0,
        vmax=3.0,
        interpolation="nearest",
    )
    bottom_axes.set_xlabel("variable")
    bottom_axes.set_ylabel("bin")
    bar = figure.colorbar(image, ax=bottom_axes, extend="max")
    bar.set_label("share of images x b (1 = uniform)")
    return figure
