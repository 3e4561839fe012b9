"""Layers of IMSVD."""

from keras_imsvd.layers.soft_variable_discretization import SoftVariableDiscretization
from keras_imsvd.layers.sync_batch_normalization import SyncBatchNormalization

__all__ = ["SoftVariableDiscretization", "SyncBatchNormalization"]
