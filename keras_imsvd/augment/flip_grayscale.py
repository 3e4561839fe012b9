"""Keras' RandomFlip and RandomGrayscale, compiled as one XLA cluster in tf.data."""

import keras

from keras_imsvd.augment._image_layer import CompiledTransform


@keras.saving.register_keras_serializable(package="keras_imsvd")
class RandomFlip(CompiledTransform, keras.layers.RandomFlip):
    """`keras.layers.RandomFlip`, faster inside `tf.data`.

    The same arguments, random draws and outputs as the Keras layer. When its
    ops are TensorFlow's (inside `tf.data.Dataset.map` under every backend, or
    under the TensorFlow backend) the flip runs as one XLA-compiled function,
    one fused pass over the batch instead of several; other backends run the
    Keras code unchanged. (The views of `keras_imsvd.augment` flip inside
    `RandomResizedCrop(horizontal_flip=True)` instead, which costs no pass.)

    It takes the arguments of `keras.layers.RandomFlip` (`mode`, `seed`,
    `data_format`, `name`, ...).

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> flip = keras_imsvd.augment.RandomFlip("horizontal", seed=0)
    >>> images = np.random.uniform(size=(2, 8, 8, 3)).astype("float32")
    >>> tuple(flip(images).shape)
    (2, 8, 8, 3)
    """


@keras.saving.register_keras_serializable(package="keras_imsvd")
class RandomGrayscale(CompiledTransform, keras.layers.RandomGrayscale):
    """`keras.layers.RandomGrayscale`, faster inside `tf.data`.

    The same arguments, random draws and outputs as the Keras layer, compiled
    with XLA when its ops are TensorFlow's, like `keras_imsvd.augment.RandomFlip`.
    The views of `keras_imsvd.augment` use it.

    It takes the arguments of `keras.layers.RandomGrayscale` (`factor`,
    `seed`, `data_format`, `name`, ...).

    Example:

    >>> import numpy as np
    >>> import keras_imsvd
    >>> gray = keras_imsvd.augment.RandomGrayscale(factor=1.0, seed=0)
    >>> images = np.random.uniform(size=(2, 8, 8, 3)).astype("float32")
    >>> out = gray(images)
    >>> bool(np.allclose(out[..., 0], out[..., 2]))
    True
    """

    def get_config(self):
        # keras.layers.RandomGrayscale (Keras 3.x) leaves its seed and data
        # format out of its config: a saved view would draw from a new seed.
        config = super().get_config()
        config.update({"seed": self.seed, "data_format": self.data_format})
        return config
