"""Shuffled batches of in-memory images, for views made on the device."""

import keras
import numpy as np

from keras_imsvd._validation import check_positive_int
from keras_imsvd.data._images import as_image_arrays


class ImageBatches(keras.utils.PyDataset):
    """Batches of images from arrays, reshuffled every epoch, without tf.data.

    The input of `IMSVDModel(views=...)`, which makes the two views itself
    inside the training step: each batch is a plain `(images,)` of the images
    as they are stored (uint8 stays uint8, a quarter of the bytes to copy to
    the device). As `multiview_dataset` does for arrays, the order is a fresh
    permutation of all images each epoch (seeded) and the last incomplete
    batch is dropped. It needs neither TensorFlow nor tf.data.

    Args:
        images: Array `(N, H, W, C)` (or `(N, H, W)`), uint8 (0-255) or float
            in [0, 1].
        batch_size: Images per batch, at most `N`. Defaults to `256`.
        shuffle: Whether to permute the images each epoch. Defaults to `True`.
        seed: int or `None`, seed of the permutations: epoch `e` is permuted by
            `numpy.random.default_rng([seed, e])`. Defaults to `None`.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`, ...).

    Example:

    >>> import numpy as np
    >>> from keras_imsvd.data._image_batches import ImageBatches
    >>> images = np.zeros((10, 8, 8, 3), "uint8")
    >>> batches = ImageBatches(images, batch_size=4, seed=0)
    >>> len(batches), batches[0][0].shape
    (2, (4, 8, 8, 3))
    """

    def __init__(self, images, batch_size=256, shuffle=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.images = as_image_arrays(images)[0]
        self.batch_size = check_positive_int("batch_size", batch_size)
        if len(self.images) < batch_size:
            raise ValueError(
                "batch_size is larger than the number of images, so dropping the "
                "last incomplete batch leaves none. Received: "
                f"batch_size={batch_size}, {len(self.images)} images"
            )
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._order = self._permutation()

    def _permutation(self):
        count = len(self.images)
        if not self.shuffle:
            return np.arange(count)
        seed = None if self.seed is None else [self.seed, self.epoch]
        return np.random.default_rng(seed).permutation(count)

    def __len__(self):
        return len(self.images) // self.batch_size

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(
                f"index must be in [0, {len(self)}). Received: index={index}"
            )
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return (self.images[rows],)

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._permutation()
