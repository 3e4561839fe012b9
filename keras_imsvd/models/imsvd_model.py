"""`IMSVDModel`: encoder, projector and soft discretization, trained with IMSVD."""

import functools
import warnings

import keras
import numpy as np
from keras import ops

from keras_imsvd import distribute
from keras_imsvd._validation import VIEW_KEYS
from keras_imsvd._validation import check_weight
from keras_imsvd.layers.soft_variable_discretization import SoftVariableDiscretization
from keras_imsvd.models import _device_views as device_views
from keras_imsvd.models.projector import build_projector
from keras_imsvd.models.projector import parse_projector_spec


def _shape_of(x):
    return tuple(x.shape) if hasattr(x, "shape") else tuple(x)


def _is_shape(value):
    return all(dim is None or isinstance(dim, int) for dim in value)


def _check_view_keys(keys):
    if set(keys) != set(VIEW_KEYS):
        raise ValueError(
            "IMSVD takes two views of each image, under exactly the keys "
            f"'view_1' and 'view_2'. Received: keys={sorted(keys, key=str)}, "
            f"expected keys={list(VIEW_KEYS)}"
        )


def _split_views(inputs, is_view):
    """The views held by `inputs`, or `None` for a single batch of images.

    `inputs` is a dict of views, a sequence of views, a sequence holding one
    sequence of views (`((x1, x2),)`), or a single view; `is_view` tells a view
    from a container (a tensor from a tuple, an image shape from a tuple of
    shapes).
    """
    if isinstance(inputs, dict):
        _check_view_keys(inputs)
        return [inputs[key] for key in VIEW_KEYS]
    if is_view(inputs) or not isinstance(inputs, (list, tuple)):
        return None
    views = list(inputs)
    if len(views) == 1 and not is_view(views[0]):
        views = list(views[0])
    return views


def _is_tensor(value):
    return not isinstance(value, (list, tuple))


def _named_views(x):
    """`(name, images)` pairs of a batch, for error messages."""
    views = _split_views(x, is_view=_is_tensor)
    if views is None:
        return [("images", x)]
    return [(f"view_{i}", view) for i, view in enumerate(views, start=1)]


def _single_view_error(what, shape):
    return ValueError(
        "IMSVDModel is trained on two views of each image: yield "
        "{'view_1': x1, 'view_2': x2} (or ((x1, x2),)) from the dataset. "
        f"Received: a single view, {what} of shape {shape}"
    )


def _check_image_dtype(dtype):
    dtype = keras.backend.standardize_dtype(dtype)
    if dtype != "uint8" and "float" not in dtype:
        raise TypeError(
            "Images must be uint8 (0-255, scaled by 1/255) or floating (in "
            "[0, 1]); cast other integer images to one of them. "
            f"Received: images.dtype={dtype}"
        )
    return dtype


def _to_unit_float(images):
    """uint8 images (0-255) to float32 in [0, 1]; floating images unchanged."""
    if _check_image_dtype(images.dtype) == "uint8":
        # k / 255 for k = 0..255, correctly rounded: as `x / 255.` on the host.
        return ops.cast(images, "float32") / 255.0
    return images


def _check_finite(x):
    """Raises a `ValueError` if a floating view of the batch `x` is not finite."""
    for name, images in _named_views(x):
        dtype = keras.backend.standardize_dtype(images.dtype)
        if "float" not in dtype:
            continue
        bad = ops.logical_not(ops.isfinite(images))
        count = int(ops.convert_to_numpy(ops.sum(ops.cast(bad, "int32"))))
        if count:
            raise ValueError(
                "check_inputs=True: the images must be finite. Received: "
                f"{name} with {count} NaN or infinite value(s) in a batch of "
                f"shape {_shape_of(images)}"
            )


def _check_step_inputs(model, args):
    """`_check_finite` on the batch of a step called with `args`."""
    if not model.run_eagerly:
        raise ValueError(
            "check_inputs=True reads every batch on the host and needs the "
            "steps to run eagerly. Received: run_eagerly=False"
        )
    try:
        _check_finite(keras.utils.unpack_x_y_sample_weight(args[-1])[0])
    except ValueError:
        if len(args) == 2:
            _restore_jax_state(model, args[0])
        raise


def _restore_jax_state(model, state):
    # During a JAX step the variables are held in `state` (trainable,
    # non-trainable, [optimizer], [metrics]), and Keras reattaches them to the
    # model only once a step has returned: assign them back so that the model
    # keeps its weights after an error.
    groups = [model.trainable_variables, model.non_trainable_variables]
    if len(state) == 4:
        groups.append(model.optimizer.variables)
    if len(state) > 2:
        groups.append(model.metrics_variables)
    for variables, values in zip(groups, state):
        for variable, value in zip(variables, values):
            variable.assign(value)


class _ImageFeatures(keras.Model):
    """An encoder behind the image handling of `IMSVDModel`, for `embed`."""

    def __init__(self, encoder, check_inputs):
        super().__init__(name="image_features")
        self.encoder = encoder
        self.check_inputs = check_inputs
        self.run_eagerly = check_inputs

    def call(self, images, training=False):
        return self.encoder(_to_unit_float(images), training=training)

    def predict_step(self, *args):
        if self.check_inputs:
            _check_step_inputs(self, args)
        return super().predict_step(*args)


class _Unsaved:
    """Holds an object out of sight of layer tracking and `.keras` saving."""

    def __init__(self, value):
        self.value = value


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

    Data for `fit` yields two views per element (unless the model makes
    them itself, see `views`), either as a dict
    `{"view_1": x1, "view_2": x2}` (optionally with labels, `(views, y)`, which
    are ignored) or as `((x1, x2),)`. A dict with other keys raises a
    `ValueError` that lists the keys received. A `torch.utils.data.DataLoader`
    works on every backend when its elements are `(views, y)` or `(views,)`;
    Keras reads a bare dict batch of a `DataLoader` only on PyTorch.

    Images are uint8 (0-255) or floating (in [0, 1], as `keras_imsvd.data`
    yields them). uint8 images are scaled by 1/255 as they enter the model, in
    training and in `embed`, `discretize` and `codes`, so `embed(images)` equals
    `embed(images / 255.)`. Other integer images raise a `TypeError`.

    A batch must hold at least 2 images: the joint distribution cannot be
    estimated from one sample. `fit` and `evaluate` skip a batch of a single
    image (the last batch of an epoch when the number of images is one more
    than a multiple of the batch size), with a warning once per model; under
    data parallelism the size of the global batch counts. On TensorFlow, whose
    compiled step sees batches of any size unless the data are batched with
    `drop_remainder=True`, the batch is skipped inside the step, without the
    warning. The skipped step changes no weight, optimizer state or BatchNorm
    statistic.

    Non-finite values: one NaN pixel makes the loss NaN and, through the
    gradient, every weight NaN. With `check_inputs=True` each batch is checked
    before it is used and a `ValueError` names the view at fault, before any
    weight changes. A loss that becomes non-finite from finite images (a
    learning rate too high) is caught by `keras.callbacks.TerminateOnNaN`,
    which stops `fit` after that step; pair it with
    `keras.callbacks.BackupAndRestore` or `ModelCheckpoint` to keep the last
    finite weights.

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
        check_inputs: Whether every batch of `fit`, `evaluate`, `predict`,
            `embed`, `discretize` and `codes` is checked to hold finite images
            before it is used. The check reads the batch on the host, so the
            steps run eagerly (`compile` sets `run_eagerly=True` and refuses
            `jit_compile=True`): slower, meant to find the data that break a
            run. Defaults to `False`.
        views: A pair `(view_1, view_2)` of Keras layers that make the two
            views of a batch of images (such as
            `keras_imsvd.augment.cifar_views(seed=0)`), or `None`. With views,
            `fit` and `evaluate` take plain batches of images (`x`, `(x,)` or
            `(x, y)`, labels ignored; NumPy arrays, a `keras.utils.PyDataset`,
            a `torch.utils.data.DataLoader` or any iterator) and build the
            views inside the training step, on the backend's tensors and
            device (compiled into the step under JAX), with the layers' own
            seed generators; `build` then takes the shape of the images before
            the views. With `None`, the data yields the two views.
            Defaults to `None`.
        **kwargs: Base `keras.Model` arguments (`name`, ...).

    Call arguments:
        inputs: Images `(N, H, W, C)`, which give their soft codes
            `(N, K, b)`; or two views (dict or pair), which give a dict of the
            soft codes of each view.
        training: Whether BatchNorm and other layers run in training mode.

    Example:

    ```python
    import keras
    import keras_imsvd
    encoder = keras_imsvd.backbones.resnet18_cifar()
    model = keras_imsvd.IMSVDModel(encoder, projector="1024-1024-1024",
                                   bin_size=32)
    model.compile(optimizer="sgd")
    model.fit(multiview_ds, epochs=2,  # {"view_1": x1, "view_2": x2}
              callbacks=[keras.callbacks.TerminateOnNaN()])
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
        check_inputs=False,
        views=None,
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
            check_weight(name, value)
        if not isinstance(check_inputs, bool):
            raise TypeError(
                "`check_inputs` must be True or False. Received: "
                f"check_inputs={check_inputs!r}"
            )
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
        self.check_inputs = check_inputs
        self.views = device_views.check_views(views)
        if check_inputs:
            self.run_eagerly = True
        self.invariance_tracker = keras.metrics.Mean(name="invariance_loss")
        self.diagonal_tracker = keras.metrics.Mean(name="diagonal_loss")
        self.off_diagonal_tracker = keras.metrics.Mean(name="off_diagonal_loss")
        self._image_features = _Unsaved(None)
        self._warned_single_image = False

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
        shapes = _split_views(input_shape, is_view=_is_shape)
        if shapes is None:
            return tuple(input_shape)
        shapes = [tuple(s) for s in shapes]
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
        if self.views is not None and _split_views(input_shape, _is_shape) is None:
            # The shape of the images before the views; the encoder sees views.
            image_shape = (None, *device_views.view_shape(self.views, image_shape)[1:])
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
        views = _split_views(inputs, is_view=_is_tensor)
        if views is not None:
            self._check_view_shapes([_shape_of(v) for v in views])
        return views

    def _soft_codes(self, images, training=None):
        features = self.encoder(_to_unit_float(images), training=training)
        embedding = self.projector(features, training=training)
        return self.discretization(embedding)

    def call(self, inputs, training=None):
        views = self._views(inputs)
        if views is None:
            return self._soft_codes(inputs, training=training)
        return {
            key: self._soft_codes(view, training=training)
            for key, view in zip(VIEW_KEYS, views)
        }

    # -- steps ---------------------------------------------------------------
    # Keras calls the steps with `(state, data)` on JAX, whose steps are pure
    # functions of the state, and with `(data,)` on TensorFlow and PyTorch.

    def train_step(self, *args):
        return self._step_of_two_or_more(super().train_step, args)

    def test_step(self, *args):
        return self._step_of_two_or_more(super().test_step, args)

    def predict_step(self, *args):
        if self.check_inputs:
            _check_step_inputs(self, args)
        return super().predict_step(*args)

    def _step_of_two_or_more(self, step, args):
        """Runs `step`, or skips it for a global batch of a single image."""
        x = keras.utils.unpack_x_y_sample_weight(args[-1])[0]
        if self.views is not None:
            device_views.check_plain_images(x)
            step = functools.partial(device_views.step_with_views, self, step)
        elif self._views(x) is None:
            raise _single_view_error("images", _shape_of(x))
        if self.check_inputs:
            _check_step_inputs(self, args)
        leaf = next(v for v in keras.tree.flatten(x) if v is not None)
        batch_size = leaf.shape[0]
        if (batch_size is not None and batch_size > 1) or (
            distribute.num_replicas() > 1  # the global batch holds >= 2 images
        ):
            return step(*args)
        if batch_size is None:
            # A compiled TensorFlow step, traced for batches of any size.
            return ops.cond(
                ops.shape(leaf)[0] > 1,
                lambda: step(*args),
                lambda: self._unchanged(args),
            )
        if not self._warned_single_image:
            self._warned_single_image = True
            warnings.warn(
                "IMSVDModel skipped a batch of a single image: the joint "
                "distribution needs at least 2 images per batch. The last batch "
                "of an epoch holds one image when the number of images is one "
                "more than a multiple of the batch size. This warning is shown "
                "once per model.",
                stacklevel=2,
            )
        return self._unchanged(args)

    def _unchanged(self, args):
        """What a step returns when it changes nothing: its logs (and state)."""
        if len(args) == 1:
            return self.get_metrics_result()
        state = args[0]
        mapping = list(zip(self.metrics_variables, state[-1]))
        with keras.StatelessScope(state_mapping=mapping):
            logs = self.get_metrics_result()
        return logs, state

    # -- objective -----------------------------------------------------------

    def compile(self, optimizer="sgd", loss=None, **kwargs):
        """Configures the model for training; IMSVD brings its own loss.

        Args:
            optimizer: Any Keras optimizer or its name. Defaults to `"sgd"`.
            loss: Must be left as `None`: the joint cross-entropy is computed
                in `compute_loss`.
            **kwargs: Other `keras.Model.compile` arguments (`metrics`,
                `jit_compile`, `steps_per_execution`, ...). With
                `check_inputs=True`, `run_eagerly` is set to `True`.
        """
        if loss is not None:
            raise ValueError(
                "IMSVDModel computes its own joint cross-entropy loss; do not pass "
                f"one to compile(). Received: loss={loss!r}"
            )
        if self.check_inputs:
            for name, refused in (("run_eagerly", False), ("jit_compile", True)):
                if name in kwargs and kwargs[name] is refused:
                    raise ValueError(
                        "check_inputs=True reads every batch on the host, so "
                        f"the steps run eagerly. Received: {name}={refused}"
                    )
            kwargs.update(run_eagerly=True, jit_compile=False)
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
            raise _single_view_error("soft codes", shape)
        # The loss of the global batch: under data parallelism the joint
        # distribution is estimated over every replica's samples.
        total, terms = distribute.global_joint_cross_entropy(
            y_pred["view_1"],
            y_pred["view_2"],
            invariance_weight=self.invariance_weight,
            diagonal_weight=self.diagonal_weight,
            off_diagonal_weight=self.off_diagonal_weight,
            # The codes come from this model's softmax: non-finite ones mean
            # that training diverged, which the non-finite loss reports.
            validate=False,
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
            images: Images `(N, H, W, C)`, uint8 (0-255) or floating (array or
                `tf.data.Dataset` of batches).
            batch_size: Batch size of inference for arrays. Defaults to `256`.
            verbose: Progress bar mode, as in `Model.predict`. Defaults to `0`.

        Returns:
            A NumPy array `(N, F)`.
        """
        if hasattr(images, "dtype"):
            _check_image_dtype(images.dtype)
        features = self._image_features.value
        if features is None or features.encoder is not self.encoder:
            features = _ImageFeatures(self.encoder, self.check_inputs)
            self._image_features = _Unsaved(features)
        return features.predict(images, batch_size=batch_size, verbose=verbose)

    def discretize(self, images, batch_size=256, verbose=0):
        """Soft codes of images, in inference mode.

        Args:
            images: Images `(N, H, W, C)`, uint8 (0-255) or floating (array or
                `tf.data.Dataset`).
            batch_size: Batch size of inference for arrays. Defaults to `256`.
            verbose: Progress bar mode. Defaults to `0`.

        Returns:
            A float32 NumPy array `(N, K, b)`; each row sums to 1 up to the
            clamp `b * epsilon`.
        """
        if hasattr(images, "dtype"):
            _check_image_dtype(images.dtype)
        return self.predict(images, batch_size=batch_size, verbose=verbose)

    def codes(self, images, batch_size=256, verbose=0):
        """Hard codes: the most probable bin of each variable.

        Args:
            images: Images `(N, H, W, C)`, uint8 (0-255) or floating (array or
                `tf.data.Dataset`).
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
                "check_inputs": self.check_inputs,
                "views": None
                if self.views is None
                else [keras.saving.serialize_keras_object(v) for v in self.views],
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
        if config.get("views") is not None:
            config["views"] = [
                keras.saving.deserialize_keras_object(v) for v in config["views"]
            ]
        return cls(**config)
