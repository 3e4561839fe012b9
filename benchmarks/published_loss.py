"""An eager PyTorch transcription of the published IMSVD loss: the speed baseline.

It follows the formulation as published, step by step: the joint matrix `P` is
built with `einsum`, its off-block entries are gathered into a copy with a
boolean mask, and each term is computed on its own. It is used only by
`loss_speed.py` as the reference that `keras_imsvd.losses.joint_cross_entropy`
is timed against, and to check that both give the same value.
"""

import torch


class PublishedJointCrossEntropy:
    """The joint cross-entropy of IMSVD, written as the published formulation.

    The boolean mask of the off-diagonal blocks is built once, here, and not
    timed; every call still gathers the `D^2 - K b^2` off-block entries of `P`
    into a new tensor (`P[mask]`), as the published formulation does.

    Args:
        num_variables: `K`.
        bin_size: `b`.

    Call arguments:
        p1: Soft codes of view 1, `(N, K, b)` float32.
        p2: Soft codes of view 2, `(N, K, b)` float32.

    Returns:
        The scalar loss `L_inv + L_dia + L_off`.
    """

    def __init__(self, num_variables, bin_size):
        self.num_variables = num_variables
        self.bin_size = bin_size
        off_blocks = ~torch.eye(num_variables, dtype=torch.bool)  # (K, K)
        self.off_block_mask = off_blocks.repeat_interleave(
            bin_size, dim=0
        ).repeat_interleave(bin_size, dim=1)  # (D, D)

    def __call__(self, p1, p2):
        n, k, _ = p1.shape
        # Invariance: both views in the same bin.
        invariance = -torch.log((p1 * p2).sum(dim=-1)).mean()
        # Joint probability matrix P, (D, D).
        joint = torch.einsum("ni,nj->ij", p1.reshape(n, -1), p2.reshape(n, -1)) / n
        # Diagonal term on the D diagonal entries.
        diagonal = torch.diagonal(joint)
        diagonal_loss = (diagonal * torch.log(diagonal)).sum() / k
        # Off-block term on a copy of the off-block entries.
        off_block = joint[self.off_block_mask]
        off_block_loss = (off_block * torch.log(off_block)).sum() / (k * (k - 1))
        return invariance + diagonal_loss + off_block_loss
