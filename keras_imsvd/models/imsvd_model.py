"""`IMSVDModel`: encoder, projector and soft discretization, trained with IMSVD."""

import keras
import numpy as np
from keras import ops

from keras_imsvd import distribute
from keras_imsvd.layers.soft_variable_discretization import SoftVariableDiscretization
from keras_imsvd.losses.joint_cross_entropy import _check_weight
from keras_imsvd.models.projector import build_projector
from keras_imsvd.models.projector import parse_projector_spec

_VIEW_KEYS = ("view_1", "view_2")
_TERMS = ("invariance_loss", "diagonal_loss", "off_diagonal_loss")


def _shape_of(x):
    return tuple(x.shape) if hasattr(x, "shape") else tuple(x)


@keras.saving.register_keras_serializable(package="keras_imsvd")
class IMSVDModel(keras.Model):
    """Self-supervised image model trained with IMSVD.

    For an image `x`, `z = projector(encoder(x))` has `D = K * bin_size`
    entries, read as K soft categorical variables by
    `SoftVariableDiscretization`. Training takes two augmented views of each
    image, passes each view through the encoder on its own (so BatchNorm sees one
    view at a time, as in the published code), and minimises the joint
    cross-entropy `invariance_weight L_inv + diagonal_weight L_dia +
    off_diagonal_weight L_off` (see `keras_imsvd.losses.joint_cross_entropy`).

    The objective lives in `compute_loss`; each backend's own `train_step` does
    the rest, so `fit`, `evaluate`, callbacks, `jit_compile` and distribution
    work as for any Keras model. `compile` needs no `loss`. `fit` logs `loss`,
    `invariance_loss`, `diagonal_loss` and `off_diagonal_loss`.

    Data for `fit` yields two views per element, either as a dict
    `{"view_1": x1, "view_2": x2}` (optionally with labels, `(views, y)`, which
    are ignored) or as `((x1, x2),)`. A batch must hold at least 2 images:
    a joint distribution cannot be estimated from one sample, and the loss
    raises a `ValueError` for a batch of one whose size is known when traced.
    Batch with `drop_remainder=True` to avoid a last batch of one.

    Args:
        encoder: A `keras.Layer`/`keras.Model` from images to `(N, F)` features.
        projector: A spec string of widths (`"1024-1024-1024"`, the published
            `--mlp` format), a list of widths, or a `keras.Layer` from `(N, F)`
            to `(N, D)`. Defaults to `"1024-1024-1024"`.
        bin_size: Bins per variable `b`, at least 2; it must divide `D`.
            Defaults to `32`.
        temperature: Softmax temperature of the discretization. Defaults to
            `1.0`.
        epsilon: Clamp of the soft codes. Defaults to `1e-8`.
        invariance_weight: Weight of `L_inv`. Defaults to `1.0`.
        diagonal_weight: Weight of `L_dia`. Defaults to `1.0`.
        off_diagonal_weight: Weight of `L_off`. Defaults to `1.0`.
        **kwargs: Base `keras.Model` arguments (`name`, ...).

    Call arguments:
        inputs: Images `(N, H, W, C)`, which give their soft codes
            `(N, K, b)`; or two views (dict or pair), which give a dict of the
            soft codes of each view.
        training: Whether BatchNorm and other layers run in training mode.

    Example:

    ```python
    import keras_imsvd
    encoder = keras_imsvd.backbones.resnet18_cifar()
    model = keras_imsvd.IMSVDModel(encoder, projector="1024-1024-1024",
                                   bin_size=32)
    model.compile(optimizer="sgd")
    model.fit(multiview_ds, epochs=2)  # {"view_1": x1, "view_2": x2}
    features = model.embed(images)    # (N, 512)
    codes = model.codes(images)        # (N, 32) bin indices
    ```

    References:
        Niu, Xia, Shan, Wang. "Information-Maximized Soft Variable
        Discretization for Self-Supervised Image Representation Learning".
        https://arxiv.org/abs/2501.03469
    """

    def __init__(
        self,
        encoder,
        projector="1024-1024-1024",
        bin_size=32,
        temperature=1.0,
        epsilon=1e-8,
        invariance_weight=1.0,
        diagonal_weight=1.0,
        off_diagonal_weight=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.layers.Layer):
            raise TypeError(
                "`encoder` must be a keras.Layer or keras.Model from images to "
                f"features. Received: encoder={encoder!r}"
            )
        for name, value in (
            ("invariance_weight", invariance_weight),
            ("diagonal_weight", diagonal_weight),
            ("off_diagonal_weight", off_diagonal_weight),
        ):
            _check_weight(name, value)
        self.discretization = SoftVariableDiscretization(
            bin_size, temperature=temperature, epsilon=epsilon, name="discretization"
        )
        if isinstance(projector, keras.layers.Layer):
            self.projector = projector
        else:
            widths = parse_projector_spec(projector)
            if widths[-1] % bin_size:
                raise ValueError(
                    "bin_size must divide the embedding size. Received: "
                    f"embedding_size={widths[-1]}, bin_size={bin_size}"
                )
            self.projector = build_projector(widths)
        self.encoder = encoder
        self.bin_size = bin_size
        self.temperature = temperature
        self.epsilon = epsilon
        self.invariance_weight = invariance_weight
        self.diagonal_weight = diagonal_weight
        self.off_diagonal_weight = off_diagonal_weight
        self.invariance_tracker = keras.metrics.Mean(name="invariance_loss")
        self.diagonal_tracker = keras.metrics.Mean(name="diagonal_loss")
        self.off_diagonal_tracker = keras.metrics.Mean(name="off_diagonal_loss")

    # -- structure ---------------------------------------------------------

    @property
    def num_variables(self):
        """Number of variables `K` (known once the model is built)."""
        size = self.embedding_size
        return None if size is None else size // self.bin_size

    @property
    def embedding_size(self):
        """Size `D` of the projector output (known once the model is built)."""
        if getattr(self.projector, "built", False):
            shape = self._embedding_shape
            return None if shape is None else shape[-1]
        return None

    def _image_shape(self, input_shape):
        if isinstance(input_shape, dict):
            missing = [key for key in _VIEW_KEYS if key not in input_shape]
            if missing:
                raise ValueError(
                    "Two views are needed, under the keys 'view_1' and 'view_2'. "
                    f"Received: keys={sorted(input_shape)}"
                )
            shapes = [tuple(input_shape[key]) for key in _VIEW_KEYS]
        elif (
            isinstance(input_shape, (list, tuple))
            and input_shape
            and isinstance(input_shape[0], (list, tuple))
        ):
            shapes = [tuple(s) for s in input_shape]
        else:
            return tuple(input_shape)
        self._check_view_shapes(shapes)
        return shapes[0]

    def _check_view_shapes(self, shapes):
        if len(shapes) != 2:
            raise ValueError(
                "IMSVD needs exactly two views of each image. "
                f"Received: {len(shapes)} view(s) with shapes {shapes}"
            )
        first, second = (tuple(s)[1:] for s in shapes)
        if first != second:
            raise ValueError(
                "Both views must have the same image shape. Received: "
                f"view_1 shape={tuple(shapes[0])}, view_2 shape={tuple(shapes[1])}"
            )

    def build(self, input_shape):
        image_shape = self._image_shape(input_shape)
        if not self.encoder.built:
            self.encoder.build(image_shape)
        feature_shape = tuple(self.encoder.compute_output_shape(image_shape))
        if len(feature_shape) != 2:
            raise ValueError(
                "The encoder must map images to (N, F) features. Received: "
                f"encoder output shape={feature_shape}"
            )
        if not self.projector.built:
            self.projector.build(feature_shape)
        self._embedding_shape = tuple(
            self.projector.compute_output_shape(feature_shape)
        )
        self.discretization.build(self._embedding_shape)
        self.built = True

    # -- forward -----------------------------------------------------------

    def _views(self, inputs):
        """Returns the two views, or `None` for a plain batch of images."""
        if isinstance(inputs, dict):
            missing = [key for key in _VIEW_KEYS if key not in inputs]
            if missing:
                raise ValueError(
                    "Two views are needed, under the keys 'view_1' and 'view_2'. "
                    f"Received: keys={sorted(inputs)}"
                )
            views = [inputs[key] for key in _VIEW_KEYS]
        elif isinstance(inputs, (list, tuple)):
            views = list(inputs)
            if len(views) == 1 and isinstance(views[0], (list, tuple)):
                views = list(views[0])
        else:
            return None
        self._check_view_shapes([_shape_of(v) for v in views])
        return views

    def _soft_codes(self, images, training=None):
        features = self.encoder(images, training=training)
        embedding = self.projector(features, training=training)
        return self.discretization(embedding)

    def call(self, inputs, training=None):
        views = self._views(inputs)
        if views is None:
            return self._soft_codes(inputs, training=training)
        return {
            key: self._soft_codes(view, training=training)
            for key, view in zip(_VIEW_KEYS, views)
        }

    # -- objective -----------------------------------------------------------

    def compile(self, optimizer="sgd", loss=None, **kwargs):
        """Configures the model for training; IMSVD brings its own loss.

        Args:
            optimizer: Any Keras optimizer or its name. Defaults to `"sgd"`.
            loss: Must be left as `None`: the joint cross-entropy is computed
                in `compute_loss`.
            **kwargs: Other `keras.Model.compile` arguments (`metrics`,
                `jit_compile`, `steps_per_execution`, ...).
        """
        if loss is not None:
            raise ValueError(
                "IMSVDModel computes its own joint cross-entropy loss; do not pass "
                f"one to compile(). Received: loss={loss!r}"
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips restoring the compile state of models that override
        # `compile`; ours only adds a check, so restore it as Keras would.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if not isinstance(y_pred, dict):
            shape = _shape_of(y_pred) if y_pred is not None else None
            raise ValueError(
                "IMSVDModel is trained on two views of each image: yield "
                "{'view_1': x1, 'view_2': x2} (or ((x1, x2),)) from the dataset. "
                f"Received: a single view, soft codes of shape {shape}"
            )
        # The loss of the global batch: under data parallelism the joint
        # distribution is estimated over every replica's samples.
        total, terms = distribute.global_joint_cross_entropy(
            y_pred["view_1"],
            y_pred["view_2"],
            invariance_weight=self.invariance_weight,
            diagonal_weight=self.diagonal_weight,
            off_diagonal_weight=self.off_diagonal_weight,
        )
        self.invariance_tracker.update_state(terms["invariance_loss"])
        self.diagonal_tracker.update_state(terms["diagonal_loss"])
        self.off_diagonal_tracker.update_state(terms["off_diagonal_loss"])
        for extra in self.losses:
            total = total + ops.cast(ops.sum(extra), total.dtype)
        # Identity except under tf.distribute, whose optimizer sums replicas.
        return distribute.scale_loss_for_replicas(total)

    # -- inference helpers -------------------------------------------------

    def embed(self, images, batch_size=256, verbose=0):
        """Encoder features for downstream tasks.

        Args:
            images: Images `(N, H, W, C)` (array or `tf.data.Dataset` of
                batches).
            batch_size: Batch size of inference for arrays. Defaults to `256`.
            verbose: Progress bar mode, as in `Model.predict`. Defaults to `0`.

        Returns:
            A NumPy array `(N, F)`.
        """
        return self.encoder.predict(images, batch_size=batch_size, verbose=verbose)

    def discretize(self, images, batch_size=256, verbose=0):
        """Soft codes of images, in inference mode.

        Args:
            images: Images `(N, H, W, C)` (array or `tf.data.Dataset`).
            batch_size: Batch size of inference for arrays. Defaults to `256`.
            verbose: Progress bar mode. Defaults to `0`.

        Returns:
            A float32 NumPy array `(N, K, b)`; each row sums to 1 up to the
            clamp `b * epsilon`.
        """
        return self.predict(images, batch_size=batch_size, verbose=verbose)

    def codes(self, images, batch_size=256, verbose=0):
        """Hard codes: the most probable bin of each variable.

        Args:
            images: Images `(N, H, W, C)` (array or `tf.data.Dataset`).
            batch_size: Batch size of inference for arrays. Defaults to `256`.
            verbose: Progress bar mode. Defaults to `0`.

        Returns:
            An int32 NumPy array `(N, K)` with values in `[0, bin_size)`.
        """
        soft = self.discretize(images, batch_size=batch_size, verbose=verbose)
        return np.argmax(soft, axis=-1).astype("int32")

    # -- serialization -----------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "projector": keras.saving.serialize_keras_object(self.projector),
                "bin_size": self.bin_size,
                "temperature": self.temperature,
                "epsilon": self.epsilon,
                "invariance_weight": self.invariance_weight,
                "diagonal_weight": self.diagonal_weight,
                "off_diagonal_weight": self.off_diagonal_weight,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        if isinstance(config["projector"], dict):
            config["projector"] = keras.saving.deserialize_keras_object(
                config["projector"]
            )
        return cls(**config)
