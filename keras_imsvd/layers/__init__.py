"""Layers of IMSVD."""

from keras_imsvd.layers.soft_variable_discretization import SoftVariableDiscretization

__all__ = ["SoftVariableDiscretization"]
