"""Data-parallel helpers: the only backend-specific code of the library."""

from keras_imsvd.distribute.collectives import all_gather
from keras_imsvd.distribute.collectives import num_replicas

__all__ = ["all_gather", "num_replicas"]
