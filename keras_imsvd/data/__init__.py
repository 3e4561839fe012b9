"""Image data for IMSVD: two-view `tf.data` pipelines and loaders.

Every loader yields images as float32 in [0, 1] (or uint8 0-255 where asked, to
save memory), channels last; `multiview_dataset` accepts both and always yields
float32 in [0, 1], the range the views of `keras_imsvd.augment` expect. The data
code is `tf.data` (TensorFlow is imported on first use) and feeds `fit` under
every Keras backend.
"""

from keras_imsvd.data.cifar10 import CIFAR10_CLASS_NAMES
from keras_imsvd.data.cifar10 import extract_cifar10_archive
from keras_imsvd.data.cifar10 import find_cifar10_archive
from keras_imsvd.data.cifar10 import load_cifar10_folder
from keras_imsvd.data.digits import load_digits
from keras_imsvd.data.digits import load_digits_split
from keras_imsvd.data.evaluation import evaluation_arrays
from keras_imsvd.data.evaluation import evaluation_dataset
from keras_imsvd.data.image_folder import IMAGE_EXTENSIONS
from keras_imsvd.data.image_folder import image_folder_dataset
from keras_imsvd.data.image_folder import list_image_folder
from keras_imsvd.data.image_folder import load_image_folder
from keras_imsvd.data.image_folder import read_image_folder
from keras_imsvd.data.multiview_dataset import multiview_dataset
from keras_imsvd.data.paths import default_cache_dir
from keras_imsvd.data.records import TFRecordImages
from keras_imsvd.data.records import tfds_records
from keras_imsvd.data.split import train_validation_split
from keras_imsvd.data.streaming import SkippedFilesLogger
from keras_imsvd.data.streaming import StreamingViews
from keras_imsvd.data.streaming import list_image_files
from keras_imsvd.data.streaming import process_shard
from keras_imsvd.data.streaming import streaming_images
from keras_imsvd.data.tfds import tfds_dataset

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "IMAGE_EXTENSIONS",
    "SkippedFilesLogger",
    "StreamingViews",
    "TFRecordImages",
    "default_cache_dir",
    "evaluation_arrays",
    "evaluation_dataset",
    "extract_cifar10_archive",
    "find_cifar10_archive",
    "image_folder_dataset",
    "list_image_files",
    "list_image_folder",
    "load_cifar10_folder",
    "load_digits",
    "load_digits_split",
    "load_image_folder",
    "multiview_dataset",
    "process_shard",
    "read_image_folder",
    "streaming_images",
    "tfds_dataset",
    "tfds_records",
    "train_validation_split",
]
