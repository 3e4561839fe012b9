"""Barlow Twins and VICReg, the baselines of the CIFAR-10 accuracy benchmark.

They are written like `keras_imsvd.IMSVDModel`: an encoder, the same projector
MLP (`keras_imsvd.models.build_projector`), two views passed through the encoder
one at a time, and the objective in `compute_loss`. They live in `benchmarks/`,
not in the library: they exist only to be compared with IMSVD.
"""

import keras
from keras import ops

from keras_imsvd.models.projector import build_projector

_VIEW_KEYS = ("view_1", "view_2")


def _standardize(z, epsilon=1e-5):
    """Per-feature batch standardisation, as `BatchNorm1d(affine=False)`."""
    mean = ops.mean(z, axis=0, keepdims=True)
    variance = ops.mean(ops.square(z - mean), axis=0, keepdims=True)
    return (z - mean) / ops.sqrt(variance + epsilon)


def _off_diagonal_square_sum(matrix):
    """Sum of the squared off-diagonal entries of a square matrix."""
    return ops.sum(ops.square(matrix)) - ops.sum(ops.square(ops.diagonal(matrix)))


def barlow_twins_loss(z1, z2, off_diagonal_weight=0.0051):
    """Barlow Twins redundancy-reduction loss.

    `C = bn(z1)^T bn(z2) / N` is the cross-correlation of the batch-standardised
    embeddings; `L = sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2`.

    Args:
        z1: Embeddings of the first view, `(N, D)`.
        z2: Embeddings of the second view, `(N, D)`.
        off_diagonal_weight: `lambda`. Defaults to `0.0051`, the value of the
            official code.

    Returns:
        A tuple `(total, terms)` of float32 scalars.

    References:
        Zbontar, Jing, Misra, LeCun, Deny. "Barlow Twins: Self-Supervised
        Learning via Redundancy Reduction", 2021. https://arxiv.org/abs/2103.03230
    """
    z1 = ops.cast(z1, "float32")
    z2 = ops.cast(z2, "float32")
    n = ops.cast(ops.shape(z1)[0], "float32")
    correlation = ops.matmul(ops.transpose(_standardize(z1)), _standardize(z2)) / n
    on_diagonal = ops.sum(ops.square(1.0 - ops.diagonal(correlation)))
    off_diagonal = _off_diagonal_square_sum(correlation)
    total = on_diagonal + off_diagonal_weight * off_diagonal
    return total, {"on_diagonal_loss": on_diagonal, "off_diagonal_loss": off_diagonal}


def vicreg_loss(
    z1,
    z2,
    invariance_weight=25.0,
    variance_weight=25.0,
    covariance_weight=1.0,
    epsilon=1e-4,
):
    """VICReg: variance-invariance-covariance regularisation.

    - invariance: `mean((z1 - z2)^2)`;
    - variance: `mean_j relu(1 - sqrt(Var(z_j) + eps))`, averaged over the two
      views, as the official code (main_vicreg.py) does;
    - covariance: `sum_{i != j} Cov(z)_ij^2 / D`, summed over both views.

    Args:
        z1: Embeddings of the first view, `(N, D)`.
        z2: Embeddings of the second view, `(N, D)`.
        invariance_weight: Defaults to `25.0`.
        variance_weight: Defaults to `25.0`.
        covariance_weight: Defaults to `1.0`.
        epsilon: Added to the variance under the square root. Defaults to `1e-4`.

    Returns:
        A tuple `(total, terms)` of float32 scalars.

    References:
        Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance
        Regularization for Self-Supervised Learning", 2022.
        https://arxiv.org/abs/2105.04906
    """
    z1 = ops.cast(z1, "float32")
    z2 = ops.cast(z2, "float32")
    n = ops.cast(ops.shape(z1)[0], "float32")
    dim = ops.cast(ops.shape(z1)[1], "float32")
    invariance = ops.mean(ops.square(z1 - z2))
    variance = 0.0
    covariance = 0.0
    for z in (z1, z2):
        centred = z - ops.mean(z, axis=0, keepdims=True)  # (N, D)
        std = ops.sqrt(ops.sum(ops.square(centred), axis=0) / (n - 1.0) + epsilon)
        variance = variance + ops.mean(ops.relu(1.0 - std)) / 2.0
        cov = ops.matmul(ops.transpose(centred), centred) / (n - 1.0)  # (D, D)
        covariance = covariance + _off_diagonal_square_sum(cov) / dim
    total = (
        invariance_weight * invariance
        + variance_weight * variance
        + covariance_weight * covariance
    )
    terms = {
        "invariance_loss": invariance,
        "variance_loss": variance,
        "covariance_loss": covariance,
    }
    return total, terms


class _TwoViewModel(keras.Model):
    """Encoder + projector trained on two views; subclasses define `objective`."""

    term_names = ()

    def __init__(self, encoder, projector="1024-1024-1024", **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.projector = build_projector(projector)
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in self.term_names
        }

    def build(self, input_shape):
        image_shape = tuple(input_shape["view_1"])
        self.encoder.build(image_shape)
        self.projector.build(self.encoder.compute_output_shape(image_shape))
        self.built = True

    def call(self, inputs, training=None):
        return {
            key: self.projector(self.encoder(inputs[key], training=training))
            for key in _VIEW_KEYS
        }

    def objective(self, z1, z2):
        raise NotImplementedError

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        total, terms = self.objective(y_pred["view_1"], y_pred["view_2"])
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        return total

    def embed(self, images, batch_size=256, verbose=0):
        """Encoder features `(N, F)` as a NumPy array."""
        return self.encoder.predict(images, batch_size=batch_size, verbose=verbose)


class BarlowTwinsModel(_TwoViewModel):
    """Barlow Twins (lambda = 0.0051 on the BN'd cross-correlation).

    Args:
        encoder: A `keras.Model` from images to `(N, F)` features.
        projector: Projector widths. Defaults to `"1024-1024-1024"`.
        off_diagonal_weight: `lambda`. Defaults to `0.0051`.
        **kwargs: Base `keras.Model` arguments.
    """

    term_names = ("on_diagonal_loss", "off_diagonal_loss")

    def __init__(
        self,
        encoder,
        projector="1024-1024-1024",
        off_diagonal_weight=0.0051,
        **kwargs,
    ):
        super().__init__(encoder, projector, **kwargs)
        self.off_diagonal_weight = off_diagonal_weight

    def objective(self, z1, z2):
        return barlow_twins_loss(z1, z2, self.off_diagonal_weight)


class VICRegModel(_TwoViewModel):
    """VICReg with weights 25 / 25 / 1 (invariance / variance / covariance).

    Args:
        encoder: A `keras.Model` from images to `(N, F)` features.
        projector: Projector widths. Defaults to `"1024-1024-1024"`.
        **kwargs: Base `keras.Model` arguments.
    """

    term_names = ("invariance_loss", "variance_loss", "covariance_loss")

    def objective(self, z1, z2):
        return vicreg_loss(z1, z2)
