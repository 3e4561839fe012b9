"""Losses of IMSVD."""

from keras_imsvd.losses.batch_collectives import BatchCollectives
from keras_imsvd.losses.joint_cross_entropy import diagonal_term
from keras_imsvd.losses.joint_cross_entropy import invariance_term
from keras_imsvd.losses.joint_cross_entropy import joint_cross_entropy
from keras_imsvd.losses.joint_cross_entropy import off_diagonal_term
from keras_imsvd.losses.joint_cross_entropy_loss import JointCrossEntropy

__all__ = [
    "BatchCollectives",
    "JointCrossEntropy",
    "diagonal_term",
    "invariance_term",
    "joint_cross_entropy",
    "off_diagonal_term",
]
