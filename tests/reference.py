"""Float64 NumPy transcription of IMSVD (docs/design.md, "Formulas"), for tests."""

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


def loss_gradients(p1, p2, weights=(1.0, 1.0, 1.0)):
    """`(dL/dp1, dL/dp2)` of the weighted loss, float64, derived from the formulas.

    With `A[n,k] = sum_j p1 p2`, `P` the joint matrix and `B` its diagonal
    blocks (`B[k] = (1/N) sum_n p1[n,k] p2[n,k]^T`):

    - `dL_inv/dp1[n,k,j] = -p2[n,k,j] / (N K A[n,k])`;
    - `dL_dia/dp1[n,k,j] = (log P_ii + 1) p2[n,k,j] / (N K)`, `i = (k, j)`;
    - `dL_off/dp1[n,i] = (sum_m (log P_im + 1) p2[n,m]
      - sum_c (log B[k]_jc + 1) p2[n,k,c]) / (N K (K-1))`;

    and the same for `p2` with `P` and `B` transposed.
    """
    p1 = np.asarray(p1, dtype=np.float64)
    p2 = np.asarray(p2, dtype=np.float64)
    n, k, b = p1.shape
    joint = joint_matrix(p1, p2)
    diagonal = np.diag(joint).reshape(k, b)
    blocks = np.einsum("nkb,nkc->kbc", p1, p2) / n

    def gradient(mine, other, joint, blocks):
        agreement = np.sum(mine * other, axis=-1, keepdims=True)
        invariance = -other / agreement / (n * k)
        diagonal_part = (np.log(diagonal) + 1.0)[None] * other / (n * k)
        if k == 1:
            off = np.zeros_like(mine)
        else:
            whole = other.reshape(n, -1) @ (np.log(joint) + 1.0).T
            within = np.einsum("kbc,nkc->nkb", np.log(blocks) + 1.0, other)
            off = (whole.reshape(n, k, b) - within) / (n * k * (k - 1))
        return weights[0] * invariance + weights[1] * diagonal_part + weights[2] * off

    return (
        gradient(p1, p2, joint, blocks),
        gradient(p2, p1, joint.T, np.transpose(blocks, (0, 2, 1))),
    )
