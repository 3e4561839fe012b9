"""keras_imsvd: IMSVD self-supervised image representation learning in Keras 3.

IMSVD (Information-Maximized Soft Variable Discretization, Niu, Xia, Shan, Wang,
https://arxiv.org/abs/2501.03469) on TensorFlow, JAX and PyTorch.
"""

from keras_imsvd import augment
from keras_imsvd import backbones
from keras_imsvd import data
from keras_imsvd import distribute
from keras_imsvd import evaluation
from keras_imsvd import explain
from keras_imsvd import layers
from keras_imsvd import losses
from keras_imsvd import models
from keras_imsvd import optimizers
from keras_imsvd.layers import SoftVariableDiscretization
from keras_imsvd.losses import JointCrossEntropy
from keras_imsvd.losses import joint_cross_entropy
from keras_imsvd.models import IMSVDModel
from keras_imsvd.version import __version__

__all__ = [
    "IMSVDModel",
    "JointCrossEntropy",
    "SoftVariableDiscretization",
    "__version__",
    "augment",
    "backbones",
    "data",
    "distribute",
    "evaluation",
    "explain",
    "joint_cross_entropy",
    "layers",
    "losses",
    "models",
    "optimizers",
]
