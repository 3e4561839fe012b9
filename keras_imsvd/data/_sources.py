"""Private: turns the sources `multiview_dataset` accepts into one form."""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_imsvd.data._images import as_image_arrays
from keras_imsvd.data._images import resize
from keras_imsvd.data._lazy import tf
from keras_imsvd.data.image_folder import image_folder_dataset
from keras_imsvd.data.tfds import tfds_dataset


@dataclass
class Source:
    """Either in-memory arrays or an unbatched dataset of `(image, label)`."""

    kind: str  # "arrays", "dataset", "folder" or "tfds"
    has_labels: bool
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    dataset: object = None  # tf.data.Dataset of (image, label); -1 labels if none

    @property
    def image_shape(self):
        if self.images is not None:
            return tuple(self.images.shape[1:])
        return tuple(self.dataset.element_spec[0].shape)


def resolve_source(
    source, image_size, split, data_dir, shuffle_files=False, seed=None
) -> Source:
    """Classifies `source` and returns it as a `Source` (not resized for arrays)."""
    if isinstance(source, (str, os.PathLike)):
        if _is_folder(source):
            if image_size is None:
                raise ValueError(
                    "image_size is needed to load an image folder (its images may "
                    f"differ in size). Received: source={str(source)!r}, "
                    "image_size=None"
                )
            dataset = image_folder_dataset(
                source, image_size, shuffle=shuffle_files, seed=seed
            )
            return Source("folder", True, dataset=dataset)
        dataset = tfds_dataset(
            source,
            split=split,
            data_dir=data_dir,
            image_size=image_size,
            shuffle_files=shuffle_files,
        )
        return Source("tfds", True, dataset=dataset)
    if isinstance(source, tf.data.Dataset):
        dataset, has_labels = _image_label_pairs(source)
        rank = dataset.element_spec[0].shape.rank
        if rank == 4:  # a batched dataset
            dataset = dataset.unbatch()
        elif rank == 2:  # (H, W) grayscale
            dataset = dataset.map(lambda image, label: (image[..., None], label))
        elif rank != 3:
            raise ValueError(
                "Dataset images must have shape (H, W, C), (H, W) or (N, H, W, C). "
                f"Received: element_spec={source.element_spec}"
            )
        if image_size is not None:
            dataset = dataset.map(
                lambda image, label: (resize(image, image_size), label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return Source("dataset", has_labels, dataset=dataset)
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise ValueError(
                "An array source is `images` or `(images, labels)`. Received: a "
                f"{type(source).__name__} of length {len(source)}"
            )
        images, labels = as_image_arrays(source[0], source[1])
        return Source("arrays", True, images=images, labels=labels)
    if hasattr(source, "shape") and hasattr(source, "dtype"):
        images, _ = as_image_arrays(source)
        return Source("arrays", False, images=images)
    raise TypeError(
        "source must be image arrays, (images, labels), a tf.data.Dataset, an image "
        f"folder path or a TFDS name. Received: source of type {type(source).__name__}"
    )


def _is_folder(source):
    """Paths are folders; strings are folders when they exist or look like paths."""
    if isinstance(source, os.PathLike) or Path(source).expanduser().exists():
        return True
    return source.startswith(("/", ".", "~")) or "\\" in source


def _image_label_pairs(dataset):
    """Maps elements `image`, `(image, label, ...)` or `{"image", "label"}`."""
    spec = dataset.element_spec
    if isinstance(spec, dict):
        if "image" not in spec:
            raise ValueError(
                "A dataset of dicts needs an 'image' key. Received: element keys "
                f"{sorted(spec)}"
            )
        has_labels = "label" in spec
        return dataset.map(
            lambda e: (e["image"], _label(e["label"]) if has_labels else _no_label())
        ), has_labels
    if isinstance(spec, tuple):
        if len(spec) == 1:
            return dataset.map(lambda image: (image, _no_label())), False
        return dataset.map(lambda image, label, *rest: (image, _label(label))), True
    if isinstance(spec, tf.TensorSpec):
        return dataset.map(lambda image: (image, _no_label())), False
    raise TypeError(
        "Dataset elements must be images, (image, label) or {'image', 'label'}. "
        f"Received: element_spec={spec}"
    )


def _label(label):
    return tf.cast(label, "int32")


def _no_label():
    return tf.constant(-1, "int32")
