"""Evaluation of learned representations: kNN, linear probe, monitoring."""

from keras_imsvd.evaluation.callbacks import KNNMonitor
from keras_imsvd.evaluation.features import extract_features
from keras_imsvd.evaluation.knn import knn_classify
from keras_imsvd.evaluation.knn import knn_predict
from keras_imsvd.evaluation.linear_probe import linear_probe

__all__ = [
    "KNNMonitor",
    "extract_features",
    "knn_classify",
    "knn_predict",
    "linear_probe",
]
