"""Float64 NumPy transcription of IMSVD (DESIGN.md section 1), for tests."""

import numpy as np


def soft_codes(z, bin_size, temperature=1.0, epsilon=1e-8):
    """`max(softmax(z_k / t), eps)` per variable, float64, shape (N, K, b)."""
    z = np.asarray(z, dtype=np.float64).reshape(len(z), -1, bin_size) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.maximum(e / e.sum(axis=-1, keepdims=True), epsilon)


def _plogp(x):
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def joint_matrix(p1, p2):
    n = len(p1)
    return p1.reshape(n, -1).T @ p2.reshape(n, -1) / n


def loss_terms(p1, p2):
    """The three unweighted terms, written out as in the paper's formulas."""
    p1 = np.asarray(p1, dtype=np.float64)
    p2 = np.asarray(p2, dtype=np.float64)
    n, k, b = p1.shape
    invariance = -np.mean(np.log(np.sum(p1 * p2, axis=-1)))
    joint = joint_matrix(p1, p2)
    diagonal = np.sum(_plogp(np.diag(joint))) / k
    off = 0.0
    for row in range(k):
        for col in range(k):
            if row != col:
                block = joint[row * b : (row + 1) * b, col * b : (col + 1) * b]
                off += np.sum(_plogp(block))
    off = off / (k * (k - 1)) if k > 1 else 0.0
    return {
        "invariance_loss": invariance,
        "diagonal_loss": diagonal,
        "off_diagonal_loss": off,
    }


def loss(p1, p2, weights=(1.0, 1.0, 1.0)):
    terms = loss_terms(p1, p2)
    return (
        weights[0] * terms["invariance_loss"]
        + weights[1] * terms["diagonal_loss"]
        + weights[2] * terms["off_diagonal_loss"]
    )
