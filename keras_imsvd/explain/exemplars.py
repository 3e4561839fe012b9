"""Exemplars: the images that fill each bin of a variable most, and their grid."""

import numpy as np

from keras_imsvd.explain._codes import as_images
from keras_imsvd.explain._codes import check_variables
from keras_imsvd.explain._codes import soft_codes


def _check_variable(variable, num_variables):
    if isinstance(variable, bool) or not isinstance(variable, (int, np.integer)):
        raise TypeError(
            f"`variable` must be an integer. Received: variable={variable!r}"
        )
    if not 0 <= variable < num_variables:
        raise ValueError(
            f"`variable` must be in [0, {num_variables}). Received: variable={variable}"
        )
    return int(variable)


def _check_top(top, num_images):
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)):
        raise TypeError(f"`top` must be an integer. Received: top={top!r}")
    if not 1 <= top <= num_images:
        raise ValueError(
            f"`top` must be between 1 and the number of images ({num_images}). "
            f"Received: top={top}"
        )
    return int(top)


def exemplars(model_or_codes, images=None, variable=0, top=5, batch_size=256):
    """Indices of the images with the highest probability of each bin.

    For variable k and bin j, the images n with the largest soft probability
    `p[n, k, j]`, in decreasing order (the lower index first among equal
    probabilities). Looking at them tells what a bin stands for.

    Args:
        model_or_codes: An `IMSVDModel`, or soft codes `(N, K, b)`.
        images: Images for the model, `None` with codes. Defaults to `None`.
        variable: Index of the variable. Defaults to `0`.
        top: Number of images per bin, at most N. Defaults to `5`.
        batch_size: Inference batch size. Defaults to `256`.

    Returns:
        An int64 NumPy array `(b, top)`: row j lists the images of bin j.

    Example:

    >>> import numpy as np
    >>> from keras_imsvd import explain
    >>> codes = np.array([[[0.9, 0.1]], [[0.2, 0.8]], [[0.6, 0.4]]])
    >>> explain.exemplars(codes, variable=0, top=2).tolist()
    [[0, 2], [1, 2]]
    """
    codes = soft_codes(model_or_codes, images, batch_size=batch_size)
    variable = _check_variable(variable, codes.shape[1])
    top = _check_top(top, codes.shape[0])
    probabilities = codes[:, variable, :].T  # (b, N)
    order = np.argsort(-probabilities, axis=1, kind="stable")  # (b, N)
    return order[:, :top].astype("int64")


def _display_range(images):
    """`(images, vmin, vmax)` for `imshow`, from the range of the values."""
    if np.issubdtype(images.dtype, np.integer):
        return images, 0, 255 if images.max(initial=0) > 1 else 1
    images = images.astype("float64")
    low, high = float(np.min(images)), float(np.max(images))
    if low >= 0.0 and high <= 1.0:
        return images, 0.0, 1.0
    if low >= 0.0 and high <= 255.0:
        return images, 0.0, 255.0
    return images, low, high if high > low else low + 1.0


def _scaled_images(images):
    """Images in [0, 1], `(N, H, W)` grey or `(N, H, W, 3)` RGB."""
    if images.ndim == 4 and images.shape[-1] in (3, 4):
        images = images[..., :3]
    elif images.ndim == 4:
        images = images[..., 0]  # grey, or the first of other channel counts
    images, low, high = _display_range(images)
    scaled = (images.astype("float64") - low) / (high - low)
    return np.clip(scaled, 0.0, 1.0)


def _mosaic(pictures, cells, gap):
    """One array holding `pictures[cells[r, c]]` on a grid, gaps of NaN."""
    height, width = pictures.shape[1:3]
    rows, columns = cells.shape
    gap_y, gap_x = gap
    shape = (rows * (height + gap_y), columns * (width + gap_x), *pictures.shape[3:])
    mosaic = np.full(shape, np.nan)
    for r in range(rows):
        for c in range(columns):
            top = r * (height + gap_y) + gap_y
            left = c * (width + gap_x) + gap_x // 2
            mosaic[top : top + height, left : left + width] = pictures[cells[r, c]]
    return mosaic


def plot_exemplars(
    model_or_codes,
    images,
    variable=0,
    top=5,
    bins=None,
    max_bins=16,
    batch_size=256,
):
    """Grid of the images that fill each bin of one variable most.

    Row j shows the `top` images with the highest soft probability of bin j
    (see `exemplars`), with that probability above each image, and on the
    left how many images have bin j as their hard code. By default the rows
    are the bins used as a hard code by at least one image, the `max_bins`
    most used of them, in bin order. Grey images (`(H, W, 1)` or `(H, W)`)
    are drawn in grey and RGB images in colour; values in [0, 1] or
    [0, 255] are drawn as they are, others stretched over their range.

    Args:
        model_or_codes: An `IMSVDModel`, or soft codes `(N, K, b)` of
            `images`.
        images: The images `(N, H, W, C)` (needed to draw them).
        variable: Index of the variable. Defaults to `0`.
        top: Images per bin. Defaults to `5`.
        bins: Bins to show (rows), or `None` for the used ones. Defaults to
            `None`.
        max_bins: Most rows drawn when `bins` is `None`. Defaults to `16`.
        batch_size: Inference batch size. Defaults to `256`.

    Returns:
        A `matplotlib.figure.Figure` (built without pyplot, see
        `keras_imsvd.explain.plots`).

    Example:

    ```python
    from keras_imsvd import explain
    explain.plot_exemplars(model, images, variable=1, top=5).savefig("bins.png")
    ```
    """
    from keras_imsvd.explain.plots import _colormap
    from keras_imsvd.explain.plots import _figure

    images = as_images(images)
    codes = soft_codes(model_or_codes, images, batch_size=batch_size)
    if len(codes) != len(images):
        raise ValueError(
            "`model_or_codes` must give one code per image. Received: "
            f"{len(codes)} codes for {len(images)} images"
        )
    variable = _check_variable(variable, codes.shape[1])
    top = _check_top(top, len(images))
    probabilities = codes[:, variable, :]  # (N, b)
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=codes.shape[2])
    if bins is None:
        used = np.flatnonzero(counts)
        most_used = used[np.argsort(-counts[used], kind="stable")][:max_bins]
        bins = sorted(int(j) for j in most_used)
    else:
        bins = check_variables(bins, codes.shape[2], name="bins")
    order = np.argsort(-probabilities.T, axis=1, kind="stable")[:, :top]  # (b, top)
    cells = order[bins]  # (rows, top)
    pictures = _scaled_images(images)
    height, width = pictures.shape[1:3]
    gap = (max(1, round(0.4 * height)), max(1, round(0.12 * width)))
    mosaic = _mosaic(pictures, cells, gap)
    if mosaic.ndim == 3:  # RGB: white gaps
        mosaic = np.where(np.isnan(mosaic), 1.0, mosaic)
    figure = _figure(
        figsize=(1.0 * top + 1.4, 1.15 * len(bins) + 0.8), layout="constrained"
    )
    axes = figure.add_subplot()
    axes.imshow(
        mosaic,
        cmap=_colormap("gray", bad="white"),
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    cell_height, cell_width = height + gap[0], width + gap[1]
    for r, bin_index in enumerate(bins):
        for c in range(top):
            axes.text(
                c * cell_width + gap[1] // 2 + width / 2,
                r * cell_height + gap[0] - 0.5,
                f"{probabilities[cells[r, c], bin_index]:.2f}",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    axes.set_xticks([])
    axes.set_yticks(
        [r * cell_height + gap[0] + height / 2 for r in range(len(bins))],
        [f"bin {j}\n{counts[j]} img" for j in bins],
        fontsize=8,
    )
    axes.tick_params(axis="y", length=0)
    for side in axes.spines.values():
        side.set_visible(False)
    axes.set_title(
        f"Variable {variable}: top {top} images of each bin "
        "(probability of the bin above each)",
        fontsize=10,
    )
    return figure
