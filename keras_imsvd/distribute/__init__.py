"""Data-parallel training: the only backend-specific code of the library."""

from keras_imsvd.distribute.collectives import all_gather
from keras_imsvd.distribute.collectives import all_reduce_sum
from keras_imsvd.distribute.collectives import num_replicas
from keras_imsvd.distribute.collectives import scale_loss_for_replicas
from keras_imsvd.distribute.data_parallel import DataParallelScope
from keras_imsvd.distribute.data_parallel import data_parallel
from keras_imsvd.distribute.global_loss import global_joint_cross_entropy
from keras_imsvd.distribute.synchronize_replicas import SynchronizeReplicas

__all__ = [
    "DataParallelScope",
    "SynchronizeReplicas",
    "all_gather",
    "all_reduce_sum",
    "data_parallel",
    "global_joint_cross_entropy",
    "num_replicas",
    "scale_loss_for_replicas",
]
