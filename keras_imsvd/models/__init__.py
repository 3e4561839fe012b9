"""IMSVD model, projector and backbones."""

from keras_imsvd.models.backbones import resnet18_cifar
from keras_imsvd.models.backbones import resnet50
from keras_imsvd.models.backbones import small_convnet
from keras_imsvd.models.imsvd_model import IMSVDModel
from keras_imsvd.models.projector import build_projector
from keras_imsvd.models.projector import parse_projector_spec

__all__ = [
    "IMSVDModel",
    "build_projector",
    "parse_projector_spec",
    "resnet18_cifar",
    "resnet50",
    "small_convnet",
]
