"""Private base class for the image layers of `keras_imsvd.augment`."""

import numbers
import weakref

from keras_imsvd._keras_compat import ImagePreprocessingLayer

# One XLA-compiled function per layer and method; dropped with the layer.
_COMPILED = weakref.WeakKeyDictionary()


def run_compiled(layer, function, *args):
    """Runs `function(*args)` as one XLA cluster when `layer` computes with TF.

    Inside `tf.data` (and under the TensorFlow backend) every op of a chain of
    element-wise steps is a separate pass over the batch, and a pass over a
    batch of 224 px images costs about as much as the whole step would cost
    fused. Compiled with XLA, the chain becomes a few fused loops (a 224 px
    colour jitter runs about 8x faster). One function per layer: functions
    fused across layers would recompute the earlier layers' gathers inside the
    later ones. `function` takes and returns tensors (structures of them) and
    draws no random numbers; the draws stay outside, where the seed
    generator's state lives. Other backends run `function` as it is.
    """
    if layer.backend.name != "tensorflow":
        return function(*args)
    import tensorflow as tf

    functions = _COMPILED.setdefault(layer, {})
    key = function.__name__
    if key not in functions:
        functions[key] = tf.function(function, jit_compile=True, autograph=False)
    return functions[key](*args)


class CompiledTransform:
    """Mixin: `transform_images` of a Keras image layer as one XLA cluster.

    Put it before the Keras layer class in the bases; the layer's random draws
    (`get_random_transformation`) are left as they are.
    """

    def transform_images(self, images, transformation=None, training=True):
        parent = super().transform_images
        if not training or self.backend.name != "tensorflow":
            return parent(images, transformation, training=training)
        if transformation is None:
            transformation = self.get_random_transformation(images, training=training)

        def transform_images(images, transformation):
            return parent(images, transformation, training=True)

        return run_compiled(self, transform_images, images, transformation)


class ImageLayer(ImagePreprocessingLayer):
    """A tf.data-safe image layer that works in channels-last internally.

    Subclasses use `self.backend` (never `keras.ops`) in their computations and draw
    random numbers with the generator of `keras_imsvd._keras_compat.seed_generator`.
    """

    # Whether `transform_images` compiles well with XLA; `RandomApply` then
    # fuses it with its selection. (XLA's CPU depthwise convolution is slow.)
    xla_friendly = True

    def __init__(self, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)

    def _to_channels_last(self, images):
        if self.data_format == "channels_first":
            return self.backend.numpy.transpose(images, (0, 2, 3, 1))
        return images

    def _from_channels_last(self, images):
        if self.data_format == "channels_first":
            return self.backend.numpy.transpose(images, (0, 3, 1, 2))
        return images

    def _spatial_axes(self, rank):
        """Height and width axes for an input of rank 3 or 4."""
        if self.data_format == "channels_first":
            return rank - 2, rank - 1
        return rank - 3, rank - 2

    def _batch_size(self, images):
        shape = self.backend.core.shape(images)
        if len(shape) == 3:
            return 1
        if len(shape) == 4:
            return shape[0]
        raise ValueError(
            "Expected images of rank 3 (single image) or 4 (batch of images). "
            f"Received: images.shape={shape}"
        )

    def _compiled(self, function, *args):
        """`run_compiled(self, function, *args)`."""
        return run_compiled(self, function, *args)

    # The defaults are those of a layer that changes pixel values only (colour,
    # blur, solarization); layers that move pixels override both.
    def transform_segmentation_masks(
        self, segmentation_masks, transformation=None, training=True
    ):
        return segmentation_masks

    def compute_output_shape(self, input_shape):
        return input_shape

    def transform_labels(self, labels, transformation, training=True):
        return labels

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        raise NotImplementedError(
            f"{self.__class__.__name__} does not transform bounding boxes."
        )


def check_probability(name, value):
    """Raises if `value` is not a number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1]. Received: {name}={value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value}")


def check_range(name, value, lower=None, upper=None, positive=False):
    """Returns `value` as a `(lo, hi)` float tuple after validating it.

    Args:
        name: the argument name used in error messages.
        value: a pair of numbers.
        lower: smallest allowed bound, or `None`.
        upper: largest allowed bound, or `None`.
        positive: whether `lo` must be strictly positive.
    """
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value
        )
    ):
        raise TypeError(
            f"{name} must be a pair of numbers (lo, hi). Received: {name}={value!r}"
        )
    lo, hi = float(value[0]), float(value[1])
    if (
        lo > hi
        or (lower is not None and lo < lower)
        or (upper is not None and hi > upper)
        or (positive and lo <= 0.0)
    ):
        if positive:
            condition = "0 < lo"
        elif lower is not None:
            condition = f"{lower} <= lo"
        else:
            condition = "lo"
        condition += " <= hi" + (f" <= {upper}" if upper is not None else "")
        raise ValueError(
            f"{name} must be (lo, hi) with {condition}. Received: {name}={value!r}"
        )
    return lo, hi
