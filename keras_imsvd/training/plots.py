"""The loss-curve figure of a run."""

import numpy as np

# Lower bound of each term in units of log b: L_inv >= 0, L_dia >= -log b,
# L_off >= -2 log b, so L >= -3 log b (docs/concepts.md).
_BOUNDS = {"loss": 3, "invariance_loss": 0, "diagonal_loss": 1, "off_diagonal_loss": 2}
_TITLES = {
    "loss": "total loss L",
    "invariance_loss": "invariance L_inv",
    "diagonal_loss": "diagonal L_dia",
    "off_diagonal_loss": "off-block L_off",
}


def history_figure(history, bin_size=None):
    """A 2 x 3 grid: the loss and its terms per epoch, and the kNN accuracy.

    Args:
        history: the rows of `history.csv` (dicts with `epoch`, counted from 0).
        bin_size: draws each term's lower bound where given.

    Returns:
        The matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 3, figsize=(10, 5.6))
    axes = axes.ravel()
    for ax, key in zip(axes, _TITLES):
        epochs, values = _series(history, key)
        ax.plot(
            epochs, values, color="tab:blue", marker="." if len(epochs) < 30 else None
        )
        if bin_size is not None:
            bound = -_BOUNDS[key] * np.log(bin_size)
            ax.axhline(bound, color="gray", linestyle="--", linewidth=1)
            label = "bound 0" if key == "invariance_loss" else f"-{_BOUNDS[key]} log b"
            ax.annotate(
                label,
                (1, bound),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=8,
                color="gray",
            )
        ax.set_title(_TITLES[key], fontsize=10)
    epochs, knn = _series(history, "val_knn_accuracy")
    axes[4].plot(epochs, knn, color="tab:green", marker="o")
    axes[4].set_title("held-out kNN accuracy", fontsize=10)
    if knn:
        # Room below the lowest value, the top at 1: the rise stays visible.
        axes[4].set_ylim(max(0.0, min(knn) - 0.05), 1.0)
    axes[5].axis("off")
    for ax in axes[:5]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _series(history, key):
    """Epochs (counted from 1) and values of `key`, where it was measured."""
    pairs = [(row["epoch"] + 1, row[key]) for row in history if key in row]
    return [p[0] for p in pairs], [p[1] for p in pairs]
