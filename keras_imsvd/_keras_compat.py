"""Every use of Keras internals in keras_imsvd, in one place.

Each entry below reaches past the public Keras API because that API lacks
something; its comment names what. Nothing else in the package imports
`keras.src` or reads private attributes of Keras objects
(`tests/test_package.py` checks the imports), so a Keras release that moves
these internals breaks this file only.
"""

import contextlib

# Missing: a public base class for image preprocessing layers. Keras' own
# RandomFlip, RandomGrayscale, ... subclass this one, and it is what lets a
# layer run inside `tf.data.Dataset.map` under every backend: its ops go through
# `layer.backend`, which switches to TensorFlow while the layer is called in a
# tf.data graph.
from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (  # noqa: E501
    BaseImagePreprocessingLayer,
)

# The Keras versions this module is written and tested against: at least the
# first, below the second (pyproject.toml asks for the same range).
SUPPORTED_KERAS_VERSIONS = ("3.8", "4")


class ImagePreprocessingLayer(BaseImagePreprocessingLayer):
    """`BaseImagePreprocessingLayer` without its `factor` argument."""

    # Missing: a public way to opt out of the base class's `factor` argument
    # (Keras' own layers without a factor set this private flag too).
    _USE_BASE_FACTOR = False


def seed_generator(layer):
    """The `keras.random.SeedGenerator` of `layer` for the ops it runs now.

    Inside `tf.data` a preprocessing layer computes with TensorFlow ops under
    every backend, so it needs a generator whose state is a TensorFlow
    variable; elsewhere this is `layer.generator`.
    """
    # Missing: a public accessor for the generator that matches the backend of
    # `layer.backend` (Keras' preprocessing layers call this private method).
    return layer._get_seed_generator(layer.backend._backend)


def call_has_training_arg(layer):
    """Whether `layer.call` takes a `training` argument."""
    # Missing: a public way to ask a layer whether its `call` takes `training`
    # (Keras' own wrappers, such as Pipeline, read this private attribute).
    return layer._call_has_training_arg


@contextlib.contextmanager
def ops_backend(layer, name):
    """Makes `layer.backend` compute with backend `name` inside the block.

    A preprocessing layer's `__call__` does this itself inside `tf.data`; this
    is for calling its `get_random_transformation` and `transform_images`
    directly from another layer's computation.
    """
    # Missing: a public way to set the ops backend of a preprocessing layer
    # (`layer.backend` is Keras' private DynamicBackend).
    layer.backend.set_backend(name)
    try:
        yield
    finally:
        layer.backend.reset()


def variable_index(optimizer, variable):
    """The index of `variable` in the lists of per-variable optimizer state."""
    # Missing: a public accessor; Keras' own optimizers (SGD, Adam, ...) call
    # this private method in their `update_step`.
    return optimizer._get_variable_index(variable)


def uses_weight_decay(optimizer, variable):
    """Whether `exclude_from_weight_decay()` leaves `variable` decayed."""
    # Missing: a public query of the exclusions set by the public
    # `exclude_from_weight_decay()`.
    return optimizer._use_weight_decay(variable)


class WithoutDecoupledWeightDecay:
    """Optimizer mixin: turns off the base class's decoupled weight decay.

    `keras.optimizers.Optimizer` applies `weight_decay` itself, decoupled
    (`p -= learning_rate * weight_decay * p` before the update). A subclass
    that applies its own decay in `update_step` puts this mixin first in its
    bases so that the decay is not applied twice.
    """

    # Missing: a public switch; the base class's `apply` calls this private
    # method, and each backend's optimizer overrides it.
    def _apply_weight_decay(self, variables):
        return
