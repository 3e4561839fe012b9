"""The loss figure of a run shows the history it is given."""

import numpy as np

from keras_imsvd.training.plots import history_figure


def test_each_panel_plots_its_term_and_the_knn_only_where_measured():
    rows = [
        {
            "epoch": epoch,
            "loss": -1.0 - epoch,
            "invariance_loss": 2.0 / (epoch + 1),
            "diagonal_loss": -0.1 * epoch,
            "off_diagonal_loss": -5.0 + 0.1 * epoch,
            **({"val_knn_accuracy": 0.5 + 0.1 * epoch} if epoch % 2 else {}),
        }
        for epoch in range(5)
    ]
    figure = history_figure(rows, bin_size=16)
    axes = figure.axes
    titles = [ax.get_title() for ax in axes[:5]]
    assert titles == [
        "total loss L",
        "invariance L_inv",
        "diagonal L_dia",
        "off-block L_off",
        "held-out kNN accuracy",
    ]
    for ax, key in zip(axes, ["loss", "invariance_loss", "diagonal_loss"]):
        x, y = ax.lines[0].get_data()
        np.testing.assert_array_equal(x, [1, 2, 3, 4, 5])
        np.testing.assert_allclose(y, [row[key] for row in rows])
    # The floor of L_dia is -log b.
    np.testing.assert_allclose(axes[2].lines[1].get_ydata(), [-np.log(16)] * 2)
    x, y = axes[4].lines[0].get_data()
    np.testing.assert_array_equal(x, [2, 4])
    np.testing.assert_allclose(y, [0.6, 0.8])
    np.testing.assert_allclose(axes[4].get_ylim(), (0.55, 1.0))
    ticks = axes[0].get_xticks()
    assert np.all(ticks == np.round(ticks))
