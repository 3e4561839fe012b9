"""Evaluation of learned representations: kNN, linear probe, the published
linear evaluations, monitoring."""

from keras_imsvd.evaluation.callbacks import KNNMonitor
from keras_imsvd.evaluation.features import extract_features
from keras_imsvd.evaluation.features import extract_features_to_file
from keras_imsvd.evaluation.knn import knn_classify
from keras_imsvd.evaluation.knn import knn_predict
from keras_imsvd.evaluation.linear_probe import linear_probe
from keras_imsvd.evaluation.published_protocol import PUBLISHED_PROTOCOLS
from keras_imsvd.evaluation.published_protocol import linear_evaluation
from keras_imsvd.evaluation.published_protocol import protocol_settings
from keras_imsvd.evaluation.published_protocol import published_learning_rate

__all__ = [
    "KNNMonitor",
    "PUBLISHED_PROTOCOLS",
    "extract_features",
    "extract_features_to_file",
    "knn_classify",
    "knn_predict",
    "linear_evaluation",
    "linear_probe",
    "protocol_settings",
    "published_learning_rate",
]
