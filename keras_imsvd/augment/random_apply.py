"""Applies a layer to each image of a batch with a given probability."""

import keras

from keras_imsvd._keras_compat import call_has_training_arg
from keras_imsvd._keras_compat import ops_backend
from keras_imsvd._keras_compat import seed_generator
from keras_imsvd.augment._image_layer import ImageLayer
from keras_imsvd.augment._image_layer import check_probability

# At rates up to this, the wrapped layer runs on the selected images only.
_GATHER_BELOW = 0.5


@keras.saving.register_keras_serializable(package="keras_imsvd")
class RandomApply(ImageLayer):
    """Applies `layer` to each image independently with probability `rate`.

    torchvision's `RandomApply(..., p=rate)`, vectorised: each image keeps its
    transformed version with probability `rate`, its input otherwise. The
    wrapped layer must keep the image shape.

    How the work is done depends on where the layer runs. With TensorFlow ops
    (inside `tf.data`, or under the TensorFlow backend):

    - a layer of `keras_imsvd.augment` that compiles well with XLA is fused with
      the selection into one XLA cluster (`ColorJitter` then skips the images
      left out);
    - any other layer, at a rate of at most 1/2, runs on the selected images
      only (gathered, then scattered back). The subset's size depends on the
      draws, so under the TensorFlow backend the layer reports
      `supports_jit = False` to Keras.

    Otherwise the wrapped layer runs on the whole batch and the selection picks
    per image.

    The layer runs inside `tf.data.Dataset.map` under every backend when the
    wrapped layer does (Keras image preprocessing layers, the layers of
    `keras_imsvd.augment`, keras-cv layers).

    Args:
        layer: a `keras.layers.Layer` (or any Keras object with a config) mapping
            images to images of the same shape. Required.
        rate: float in [0, 1], probability of applying `layer` to an image.
            Defaults to `0.5`.
        seed: int or `None`, seed of the layer's `keras.random.SeedGenerator`.
            Defaults to `None`.
        **kwargs: base layer arguments such as `name`.

    Call arguments:
        inputs: images of shape `(N, H, W, C)` or `(H, W, C)`.
        training: bool; when false the input is returned unchanged (cast to the
            compute dtype). Defaults to `True`.

    Returns:
        Images of the input shape.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import keras_imsvd
    >>> grayscale = keras.layers.RandomGrayscale(factor=1.0)
    >>> layer = keras_imsvd.augment.RandomApply(grayscale, rate=0.2, seed=0)
    >>> images = np.random.uniform(size=(8, 32, 32, 3)).astype("float32")
    >>> tuple(layer(images).shape)
    (8, 32, 32, 3)
    """

    def __init__(self, layer, rate=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(
                "layer must be a keras.layers.Layer instance. "
                f"Received: layer={layer!r} of type {type(layer).__name__}"
            )
        check_probability("rate", rate)
        self.layer = layer
        self.rate = float(rate)
        if (
            self.backend.name == "tensorflow"
            and self.rate <= _GATHER_BELOW
            and not (isinstance(layer, ImageLayer) and layer.xla_friendly)
        ):
            # The selected subset has a dynamic size. Under the other backends
            # the subset is taken only inside tf.data, which XLA never compiles,
            # so a training step that holds the layer stays compilable.
            self.supports_jit = False
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(input_shape)
        self.built = True

    def call(self, inputs, training=True):
        images = self.backend.cast(inputs, self.compute_dtype)
        if not training or self.rate == 0.0:
            return images
        if self.rate < 1.0:
            self._check_shape_kept(tuple(images.shape))
            if not self.layer.built:
                self.layer.build(images.shape)
        if self.rate < 1.0 and self._fusable(images):
            return self._call_fused(images, training)
        if self._gathers(images):
            return self._call_subset(images, training)
        kwargs = {"training": training} if call_has_training_arg(self.layer) else {}
        transformed = self.layer(images, **kwargs)
        transformed = self.backend.cast(transformed, self.compute_dtype)
        if self.rate == 1.0:
            return transformed
        self._check_shape_kept(tuple(images.shape), tuple(transformed.shape))
        return self._select(self._draws(images), transformed, images)

    def _gathers(self, images):
        """Whether to run the wrapped layer on the selected images only.

        With TensorFlow ops (tf.data) and a rate of at most one half, gathering
        the selected images costs less than transforming the whole batch. The
        subset has a data-dependent size, which XLA cannot compile, so such a
        layer reports `supports_jit = False` to Keras.
        """
        return (
            self.backend.name == "tensorflow"
            and self.rate <= _GATHER_BELOW
            and len(images.shape) == 4
        )

    def _call_subset(self, images, training):
        numpy = self.backend.numpy
        core = self.backend.core
        indices = numpy.nonzero(self._draws(images) < self.rate)[0]  # (M,)
        kwargs = {"training": training} if call_has_training_arg(self.layer) else {}

        def transform():
            subset = numpy.take(images, indices, axis=0)
            transformed = self.backend.cast(
                self.layer(subset, **kwargs), self.compute_dtype
            )
            self._check_shape_kept(tuple(subset.shape), tuple(transformed.shape))
            return core.scatter_update(images, indices[:, None], transformed)

        # Layers need not accept an empty batch (reflect padding does not).
        return core.cond(numpy.size(indices) > 0, transform, lambda: images)

    def _draws(self, images):
        seed = seed_generator(self)
        shape = (self._batch_size(images),)
        return self.backend.random.uniform(shape, dtype="float32", seed=seed)

    def _call_fused(self, images, training):
        """The wrapped layer's transform and the selection, one XLA cluster."""
        # As the layer's own `__call__` would inside tf.data: TensorFlow ops.
        with ops_backend(self.layer, self.backend.name):
            transformation = self.layer.get_random_transformation(
                images, training=training
            )
            draws = self._draws(images)
            return self._compiled(self._apply_fused, images, transformation, draws)

    def _fusable(self, images):
        """Whether the wrapped layer's transform can join the selection's cluster."""
        return (
            self.backend.name == "tensorflow"
            and isinstance(self.layer, ImageLayer)
            and self.layer.xla_friendly
            and len(images.shape) == 4
        )

    def _apply_fused(self, images, transformation, draws):
        if getattr(self.layer, "accepts_apply_mask", False):
            # The layer leaves the other images out itself (no work on them).
            transformation = {**transformation, "apply": draws < self.rate}
            transformed = self.layer.transform_images(images, transformation)
            return self.backend.cast(transformed, images.dtype)
        transformed = self.layer.transform_images(images, transformation)
        return self._select(draws, self.backend.cast(transformed, images.dtype), images)

    def _select(self, draws, transformed, images):
        apply = draws < self.rate  # (N,)
        rank = len(images.shape)
        apply = self.backend.numpy.reshape(apply, (-1,) + (1,) * (rank - 1))
        return self.backend.numpy.where(apply, transformed, images)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def _check_shape_kept(self, in_shape, out_shape=None):
        """Raises unless the wrapped layer maps `in_shape` to itself."""
        if out_shape is None:
            try:
                out_shape = tuple(self.layer.compute_output_shape(in_shape))
            except Exception:  # the layer cannot tell: check its output instead
                return
        if len(in_shape) != len(out_shape) or any(
            a is not None and b is not None and a != b
            for a, b in zip(in_shape, out_shape)
        ):
            raise ValueError(
                "RandomApply needs a layer that keeps the image shape. Received: "
                f"layer={self.layer.name} mapping shape {in_shape} to {out_shape}"
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "rate": self.rate,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)
