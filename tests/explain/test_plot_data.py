"""The explain figures draw the right numbers in the right places.

Each figure is read back through matplotlib (the array of an `AxesImage`, bar
heights, tick labels, texts) and compared with hand-computed values, so a
transposed matrix, a reversed ranking or a wrong variable shows up as a failure.
"""

import numpy as np
import pytest

from keras_imsvd import explain


def _image_data(axes):
    """The array drawn by the single image of `axes`, masked entries as NaN."""
    (image,) = axes.images
    return np.ma.filled(np.ma.masked_invalid(image.get_array()).astype(float), np.nan)


def _runs(present):
    """`(start, stop)` of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], present.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _cells(mosaic):
    """Pictures of a grid of images separated by NaN gaps, `[row][column]`."""
    drawn = np.isfinite(mosaic)
    rows = _runs(drawn.any(axis=1))
    columns = _runs(drawn.any(axis=0))
    return [[mosaic[r0:r1, c0:c1] for c0, c1 in columns] for r0, r1 in rows]


def _tick_labels(axes):
    ticks = axes.get_yticks()
    labels = [label.get_text() for label in axes.get_yticklabels()]
    return [label for _, label in sorted(zip(ticks, labels))]


# -- joint matrix ------------------------------------------------------------


@pytest.fixture
def joint_matrix():
    """Three variables of four bins: a `(12, 12)` matrix of asymmetric blocks."""
    rng = np.random.default_rng(0)
    blocks = rng.dirichlet(np.ones(16), size=(3, 3)).reshape(3, 3, 4, 4)
    return blocks.transpose(0, 2, 1, 3).reshape(12, 12)  # block (k, l) at (k, l)


def test_joint_matrix_image_is_the_selected_blocks(joint_matrix):
    figure = explain.plot_joint_matrix(joint_matrix, variables=[2, 0])
    axes = figure.axes[0]
    rows = [8, 9, 10, 11, 0, 1, 2, 3]  # block 2, then block 0
    np.testing.assert_array_equal(_image_data(axes), joint_matrix[np.ix_(rows, rows)])
    # Rows are view 1, columns view 2, as in P = p1^T p2 / N.
    assert "view 1" in axes.get_ylabel() and "view 2" in axes.get_xlabel()
    assert _tick_labels(axes) == ["2", "0"]
    np.testing.assert_allclose(axes.get_yticks(), [1.5, 5.5])
    norm = axes.images[0].norm
    assert (norm.vmin, norm.vmax, norm.gamma) == (0.0, 0.25, 0.5)  # vmax = 1/b


def test_joint_matrix_defaults_show_every_block(joint_matrix):
    figure = explain.plot_joint_matrix(joint_matrix, vmax=0.1, gamma=1.0)
    np.testing.assert_array_equal(_image_data(figure.axes[0]), joint_matrix)
    assert figure.axes[0].images[0].norm.vmax == 0.1


# -- exemplars ---------------------------------------------------------------

# Soft codes of variable 1 for six images over three bins. Ranked by hand:
# bin 0: images 0 (0.7), 4 (0.6), 2 (0.5); bin 1: 5 (0.4), 2 (0.3), 0 (0.2);
# bin 2: 1 (0.8), 3 (0.7), then 4 and 5 tie at 0.3 and the lower index wins.
# Hard codes 0, 2, 0, 2, 0, 1: bin 0 holds 3 images, bin 1 one, bin 2 two.
_VARIABLE_1 = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.1, 0.8],
        [0.5, 0.3, 0.2],
        [0.2, 0.1, 0.7],
        [0.6, 0.1, 0.3],
        [0.3, 0.4, 0.3],
    ]
)
_GRID = [[0, 4, 2], [5, 2, 0], [1, 3, 4]]
_PROBABILITIES = ["0.70", "0.60", "0.50", "0.40", "0.30", "0.20", "0.80", "0.70"]
_PROBABILITIES += ["0.30"]


@pytest.fixture
def codes():
    # Variable 0 ranks the bins in reverse, so reading it instead shows.
    return np.stack([_VARIABLE_1[:, ::-1], _VARIABLE_1], axis=1)  # (6, 2, 3)


@pytest.fixture
def pictures():
    """Six grey 4 x 5 images: a distinct level each plus an asymmetric ramp."""
    ramp = np.arange(20).reshape(4, 5) / 400.0
    return (np.arange(6)[:, None, None] / 10.0 + ramp)[..., None]  # (6, 4, 5, 1)


def _grid_of_indices(figure, pictures):
    """Which picture each cell of the drawn mosaic is, `[row][column]`."""
    grid = []
    for row in _cells(_image_data(figure.axes[0])):
        indices = []
        for cell in row:
            matches = [
                n for n, picture in enumerate(pictures) if np.array_equal(cell, picture)
            ]
            assert len(matches) == 1, "a cell is not one of the images, upright"
            indices.append(matches[0])
        grid.append(indices)
    return grid


def test_exemplars_ranking_matches_hand_count(codes):
    np.testing.assert_array_equal(explain.exemplars(codes, variable=1, top=3), _GRID)


def test_exemplar_grid_rows_are_bins_columns_are_ranks(codes, pictures):
    figure = explain.plot_exemplars(codes, pictures, variable=1, top=3)
    axes = figure.axes[0]
    assert _grid_of_indices(figure, pictures[..., 0]) == _GRID
    assert _tick_labels(axes) == ["bin 0\n3 img", "bin 1\n1 img", "bin 2\n2 img"]
    # The probability above each image, read in rows from the top.
    texts = sorted(axes.texts, key=lambda t: (t.get_position()[1], t.get_position()[0]))
    assert [t.get_text() for t in texts] == _PROBABILITIES


def test_exemplar_grid_keeps_the_most_used_bins_in_bin_order(codes, pictures):
    figure = explain.plot_exemplars(codes, pictures, variable=1, top=2, max_bins=2)
    assert _grid_of_indices(figure, pictures[..., 0]) == [[0, 4], [1, 3]]
    figure = explain.plot_exemplars(codes, pictures, variable=1, top=1, bins=[2, 1])
    assert _grid_of_indices(figure, pictures[..., 0]) == [[1], [5]]


# -- bin usage and redundancy --------------------------------------------------


def test_bin_usage_image_is_share_times_bins_per_variable_column():
    counts = [[4, 4, 0, 8], [16, 0, 0, 0], [1, 2, 3, 10]]
    statistics = {
        "variables": [
            {"bin_counts": c, "normalized_entropy": h, "bins_used": u}
            for c, h, u in zip(counts, [0.75, 0.0, 0.8], [3, 1, 4])
        ],
        "summary": {"num_dead_bins": 4},
    }
    figure = explain.plot_bin_usage(statistics)
    top_axes, bottom_axes = figure.axes[:2]
    # (bins, variables): share of the variable's images in each bin, times 4.
    expected = np.array([[1.0, 4.0, 0.25], [1.0, 0.0, 0.5], [0.0, 0.0, 0.75]])
    expected = np.vstack([expected, [2.0, 0.0, 2.5]])
    np.testing.assert_allclose(_image_data(bottom_axes), expected)
    heights = [patch.get_height() for patch in top_axes.patches]
    np.testing.assert_allclose(heights, [0.75, 0.0, 0.8])
    (points,) = top_axes.lines
    np.testing.assert_allclose(points.get_ydata(), [0.75, 0.25, 1.0])
    assert "4 dead bins" in top_axes.get_title()


def test_redundancy_images_mask_the_diagonal_and_share_a_scale():
    model = np.array([[1.0, 0.2, 0.1], [0.2, 0.5, 0.4], [0.1, 0.4, 2.0]])
    reference = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 1.0]])
    figure = explain.plot_redundancy(model, reference=reference)
    left, right = figure.axes[:2]
    nan = np.nan
    np.testing.assert_array_equal(
        _image_data(right), [[nan, 0.2, 0.1], [0.2, nan, 0.4], [0.1, 0.4, nan]]
    )
    np.testing.assert_array_equal(
        _image_data(left), [[nan, 0.6, 0.0], [0.6, nan, 0.3], [0.0, 0.3, nan]]
    )
    assert left.images[0].get_clim() == right.images[0].get_clim() == (0.0, 0.6)
    assert "mean off-diagonal MI 0.233" in right.get_title()  # (0.2+0.1+0.4)/3
    assert left.get_title().startswith("reference")
    # Normalised: MI_kl / min(H_k, H_l), with the entropies on the diagonal.
    figure = explain.plot_redundancy(model, normalize=True)
    np.testing.assert_allclose(
        _image_data(figure.axes[0]),
        [[nan, 0.4, 0.1], [0.4, nan, 0.8], [0.1, 0.8, nan]],
    )
