"""Encoders for IMSVD: `keras_imsvd.backbones.resnet18_cifar()` and friends."""

from keras_imsvd.models.backbones import resnet18_cifar
from keras_imsvd.models.backbones import resnet50
from keras_imsvd.models.backbones import small_convnet

__all__ = ["resnet18_cifar", "resnet50", "small_convnet"]
