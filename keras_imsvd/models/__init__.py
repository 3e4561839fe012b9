"""The IMSVD model and its projector (the encoders are in `keras_imsvd.backbones`)."""

from keras_imsvd.models.imsvd_model import IMSVDModel
from keras_imsvd.models.projector import build_projector
from keras_imsvd.models.projector import parse_projector_spec

__all__ = [
    "IMSVDModel",
    "build_projector",
    "parse_projector_spec",
]
