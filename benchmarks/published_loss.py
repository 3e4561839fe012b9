"""An eager PyTorch transcription of the published IMSVD loss: the speed baseline.

It follows the formulation as published, step by step: the joint matrix `P` is
built with `einsum`, its off-block entries are gathered into a copy with a
boolean mask, and each term is computed on its own. `loss_speed.py` times
`keras_imsvd.losses.joint_cross_entropy` against it (and checks that both give
the same value), and `published_step.py` trains with it.
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
        device: torch device of the mask, that of the codes. Defaults to `None`
            (the CPU).

    Call arguments:
        p1: Soft codes of view 1, `(N, K, b)` float32.
        p2: Soft codes of view 2, `(N, K, b)` float32.

    Returns:
        The scalar loss `L_inv + L_dia + L_off`.
    """

    def __init__(self, num_variables, bin_size, device=None):
        self.num_variables = num_variables
        self.bin_size = bin_size
        off_blocks = ~torch.eye(num_variables, dtype=torch.bool)  # (K, K)
        self.off_block_mask = (
            off_blocks.repeat_interleave(bin_size, dim=0)
            .repeat_interleave(bin_size, dim=1)
            .to(device)
        )  # (D, D)

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
