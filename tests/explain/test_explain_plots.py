"""Every explain figure renders to a PNG headless, without pyplot."""

import io

import matplotlib
import numpy as np
import pytest

from keras_imsvd import explain

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 5_000  # an empty 100-dpi figure is well under this


def _png_bytes(figure):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    data = buffer.getvalue()
    assert data[:8] == PNG_HEADER
    assert len(data) > MIN_PNG_BYTES
    return data


@pytest.fixture(autouse=True)
def no_pyplot_figures():
    """The functions must not create pyplot figures (nor show any)."""
    from matplotlib import pyplot

    before = set(pyplot.get_fignums())
    yield
    assert set(pyplot.get_fignums()) == before
    assert matplotlib.get_backend().lower() == "agg"


def test_joint_matrix_figure(tiny_model, images):
    P = explain.joint_probability_matrix(tiny_model, (images, images[::-1]))
    figure = explain.plot_joint_matrix(P, variables=range(3))
    axes = figure.axes[0]
    assert axes.get_xlabel() and axes.get_ylabel()
    assert len(figure.axes) == 2  # the heat map and its colour bar
    _png_bytes(figure)
    # Defaults: the first five blocks (here all four), bin size read from P.
    _png_bytes(explain.plot_joint_matrix(P, vmax=0.05, gamma=1.0, title="P"))


def test_redundancy_figures(tiny_model, images):
    single = explain.plot_redundancy(tiny_model, images)
    assert len(single.axes) == 2
    _png_bytes(single)
    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.ones(8), size=(40, 4))
    pair = explain.plot_redundancy(tiny_model, images, reference=reference)
    assert len(pair.axes) == 3  # two panels and one shared colour bar
    assert "reference" in pair.axes[0].get_title()
    _png_bytes(pair)
    matrix = explain.redundancy_matrix(tiny_model, images)
    _png_bytes(explain.plot_redundancy(matrix))
    normalized = explain.plot_redundancy(matrix, reference=reference, normalize=True)
    assert "min H" in normalized.axes[1].get_title()
    _png_bytes(normalized)


def test_exemplar_grids(tiny_model, images):
    figure = explain.plot_exemplars(tiny_model, images, variable=1, top=4)
    used = len(np.unique(tiny_model.codes(images)[:, 1]))
    assert len(figure.axes) == 1  # one mosaic: fast to lay out and save
    assert len(figure.axes[0].get_yticklabels()) == used  # one row per used bin
    _png_bytes(figure)
    rgb = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3)).astype("uint8")
    codes = tiny_model.discretize(images)
    figure = explain.plot_exemplars(codes, rgb, variable=0, top=3, bins=[0, 5])
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert [label.split()[1] for label in labels] == ["0", "5"]
    assert len(figure.axes[0].texts) == 6  # a probability above each image
    _png_bytes(figure)
    standardised = np.random.default_rng(1).normal(size=(40, 8, 8, 3))
    _png_bytes(explain.plot_exemplars(codes, standardised, variable=2, top=2))


def test_bin_usage_figure(tiny_model, images):
    stats = explain.variable_statistics(tiny_model, images)
    figure = explain.plot_bin_usage(stats)
    assert len(figure.axes) == 3
    _png_bytes(figure)
    with pytest.raises(TypeError, match="statistics"):
        explain.plot_bin_usage([1, 2])
