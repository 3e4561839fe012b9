"""The joint probability matrix `P` of IMSVD, accumulated over a whole dataset."""

import itertools

import numpy as np

from keras_imsvd._validation import check_positive_int
from keras_imsvd._validation import views_of_dict
from keras_imsvd.explain._codes import check_soft_codes
from keras_imsvd.explain._codes import check_variables
from keras_imsvd.explain._codes import to_numpy

# Rows of P updated per matrix product: bounds the temporary to 1024 x D.
_ROWS_PER_PRODUCT = 1024


def _flatten(codes, variables):
    # (N, K, b) -> (N, V * b) in float64, V = len(variables)
    selected = codes[:, variables, :].astype("float64")
    return selected.reshape(selected.shape[0], -1)


class JointMatrixAccumulator:
    """Streaming sum of `vec(p1[n]) vec(p2[n])^T` over batches of soft codes.

    `result()` is `P = (1/N) sum_n vec(p1[n]) vec(p2[n])^T` over every sample
    passed to `update`, whatever the batch sizes: the sum of outer products is
    divided by the total count once, at the end (an average of per-batch means
    would weight a short last batch too much). The sum is kept in float64.

    Args:
        variables: Indices of the variables whose blocks are kept (a subset
            keeps memory down: the result is `(V b, V b)` for `V` variables),
            or `None` for all of them. Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> from keras_imsvd import explain
    >>> codes = np.full((6, 3, 4), 0.25)
    >>> accumulator = explain.JointMatrixAccumulator(variables=[0, 2])
    >>> accumulator.update(codes[:4], codes[:4])
    >>> accumulator.update(codes[4:], codes[4:])
    >>> accumulator.result().shape
    (8, 8)
    """

    def __init__(self, variables=None):
        self.variables = variables
        self.count = 0
        self._sum = None
        self._shape = None
        self._selected = None

    def update(self, p1, p2):
        """Adds a batch of soft codes of both views, each `(n, K, b)`."""
        p1 = check_soft_codes(p1, "p1")
        p2 = check_soft_codes(p2, "p2")
        if p1.shape != p2.shape:
            raise ValueError(
                "Both views must have the same shape. "
                f"Received: p1.shape={p1.shape}, p2.shape={p2.shape}"
            )
        if self._shape is None:
            self._shape = p1.shape[1:]
            self._selected = check_variables(self.variables, p1.shape[1])
            size = len(self._selected) * p1.shape[2]
            self._sum = np.zeros((size, size), dtype="float64")
        elif p1.shape[1:] != self._shape:
            raise ValueError(
                "Every batch must have the same (num_variables, bin_size). "
                f"Received: {p1.shape[1:]} after {self._shape}"
            )
        flat1 = _flatten(p1, self._selected)  # (n, V b)
        flat2 = _flatten(p2, self._selected)  # (n, V b)
        for start in range(0, flat1.shape[1], _ROWS_PER_PRODUCT):
            stop = start + _ROWS_PER_PRODUCT
            self._sum[start:stop] += flat1[:, start:stop].T @ flat2
        self.count += p1.shape[0]

    def result(self):
        """The float64 matrix `P`, `(V b, V b)`."""
        if not self.count:
            raise ValueError("No samples were accumulated: the data was empty.")
        return self._sum / self.count


def joint_probability_matrix_from_codes(p1, p2, variables=None):
    """Joint probability matrix `P` from the soft codes of two views.

    `P = (1/N) sum_n vec(p1[n]) vec(p2[n])^T`: a `(D, D)` matrix (`D = K b`)
    of K x K blocks of size b x b. Block `(k, l)` estimates the joint
    distribution of variable k in view 1 and variable l in view 2; each block
    sums to 1 (up to the clamp of the codes).

    Args:
        p1: Soft codes of view 1, `(N, K, b)`.
        p2: Soft codes of view 2, `(N, K, b)`.
        variables: Indices of the variables whose blocks are kept, in this
            order, or `None` for all. The result is `(V b, V b)` for `V`
            variables. Defaults to `None`.

    Returns:
        A float64 NumPy array `(V b, V b)`.

    Example:

    >>> import numpy as np
    >>> from keras_imsvd import explain
    >>> codes = np.full((5, 3, 4), 0.25)
    >>> P = explain.joint_probability_matrix_from_codes(codes, codes)
    >>> P.shape, float(P[:4, 4:8].sum())
    ((12, 12), 1.0)
    """
    accumulator = JointMatrixAccumulator(variables=variables)
    accumulator.update(p1, p2)
    return accumulator.result()


def _views_of(element):
    """The two views of one dataset element, in the formats `fit` accepts."""
    if isinstance(element, dict):
        return tuple(views_of_dict(element))
    if isinstance(element, (list, tuple)):
        if len(element) == 1:  # ((x1, x2),)
            return _views_of(element[0])
        if len(element) in (2, 3) and isinstance(element[0], (dict, list, tuple)):
            return _views_of(element[0])  # (views, labels[, weights])
        if len(element) == 2:
            return element[0], element[1]
    raise ValueError(
        "Each batch must be {'view_1': x1, 'view_2': x2} (optionally with "
        "labels: (views, y)), ((x1, x2),) or (x1, x2). "
        f"Received: {type(element).__name__}"
    )


def _batches(data, batch_size):
    """Yields `(a1, a2)` pairs of NumPy batches from `data`."""
    if (
        isinstance(data, (list, tuple))
        and len(data) == 2
        and all(hasattr(part, "shape") and len(part.shape) >= 3 for part in data)
    ):
        # A pair of whole arrays, split into batches here.
        first, second = to_numpy(data[0]), to_numpy(data[1])
        if len(first) != len(second):
            raise ValueError(
                "Both views must hold the same number of samples. "
                f"Received: {len(first)} and {len(second)}"
            )
        for start in range(0, len(first), batch_size):
            stop = start + batch_size
            yield first[start:stop], second[start:stop]
        return
    if hasattr(data, "as_numpy_iterator"):  # tf.data.Dataset
        data = data.as_numpy_iterator()
    for element in data:
        first, second = _views_of(element)
        yield to_numpy(first), to_numpy(second)


def joint_probability_matrix(model, data, variables=None, batch_size=256, steps=None):
    """Joint probability matrix `P` of a model over a whole two-view dataset.

    `P = (1/N) sum_n vec(p1[n]) vec(p2[n])^T` over every sample `n` of `data`,
    where `p1`, `p2` are the soft codes of the two views (the matrix whose
    entropy terms the IMSVD loss optimises on each batch, here estimated over
    the dataset). It is built batch by batch: the outer products are summed in
    float64 and divided by the total number of samples at the end, so batches
    of different sizes are weighted correctly. Codes are computed in inference
    mode (BatchNorm uses its moving statistics).

    Memory: `P` is `D x D` with `D = K b`; with the ImageNet settings
    (`D = 8160`) that is 266 MB in float32 and 533 MB for the float64
    accumulator (plus at most 1024 x D for one product), and each batch costs
    `n D^2` multiply-adds in float64. Pass `variables=` to keep only some
    blocks (five variables of 80 bins: 400 x 400, 1.3 MB).

    Args:
        model: An `IMSVDModel` (any Keras model from images to soft codes
            `(N, K, b)`), or `None` when `data` holds soft codes.
        data: A `tf.data.Dataset` or any iterable of batches of two views:
            `{"view_1": x1, "view_2": x2}`, `(views, labels)`, `((x1, x2),)`
            or `(x1, x2)`; or a pair `(x1, x2)` of whole arrays, split into
            batches of `batch_size`. With `model=None` the views are soft codes
            `(n, K, b)`, for instance `(p1, p2)` from `model.discretize`.
        variables: Indices of the variables whose blocks are kept, or `None`
            for all. The result is `(V b, V b)` for `V` variables. Defaults to
            `None`.
        batch_size: Batch size used when `data` is a pair of whole arrays.
            Defaults to `256`.
        steps: Number of batches to read (for an infinite dataset), or `None`
            to read all. Defaults to `None`.

    Returns:
        A float64 NumPy array `(V b, V b)` whose b x b blocks each sum to 1.

    Example:

    ```python
    from keras_imsvd import explain
    P = explain.joint_probability_matrix(model, multiview_ds, variables=range(5))
    fig = explain.plot_joint_matrix(P)
    ```
    """
    if model is not None and not callable(getattr(model, "predict_on_batch", None)):
        raise TypeError(
            "`model` must be a Keras model from images to soft codes, or None when "
            f"`data` holds soft codes. Received: model={model!r}"
        )
    batch_size = check_positive_int("batch_size", batch_size)
    batches = _batches(data, batch_size)
    if steps is not None:
        batches = itertools.islice(batches, check_positive_int("steps", steps))
    accumulator = JointMatrixAccumulator(variables=variables)
    for first, second in batches:
        if model is not None:
            first = to_numpy(model.predict_on_batch(first))
            second = to_numpy(model.predict_on_batch(second))
        accumulator.update(first, second)
    return accumulator.result()
