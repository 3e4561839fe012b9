"""Optimizers and learning-rate schedules of the published IMSVD recipes."""

from keras_imsvd.optimizers.lars import LARS
from keras_imsvd.optimizers.schedules import published_schedule

__all__ = ["LARS", "published_schedule"]
