"""Optimizers and learning-rate schedules of the published IMSVD recipes."""

from keras_imsvd.optimizers.lars import LARS
from keras_imsvd.optimizers.schedules import published_schedule
from keras_imsvd.optimizers.torch_sgd import TorchSGD

__all__ = ["LARS", "TorchSGD", "published_schedule"]
