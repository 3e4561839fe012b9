"""The two views of `IMSVDModel(views=...)`, built inside the training step.

With views set, `fit` and `evaluate` read plain batches of images and the
model applies the view layers itself, on the backend's own tensors, on the
device that runs the step (the way DALI or kornia augment for PyTorch). Their
random draws come from the layers' `keras.random.SeedGenerator`s, whose states
are non-trainable variables of the model: under JAX the views compile into the
jitted step and the new seed states leave it with the rest of the state.
"""

import keras
from keras import ops

from keras_imsvd._validation import VIEW_KEYS


def check_views(views):
    """`views` as a pair of Keras layers, or `None`; raises for anything else."""
    if views is None:
        return None
    if (
        not isinstance(views, (list, tuple))
        or len(views) != 2
        or not all(isinstance(view, keras.layers.Layer) for view in views)
    ):
        raise TypeError(
            "views must be a pair (view_1, view_2) of keras.layers.Layer (such "
            "as keras_imsvd.augment.cifar_views()), or None. "
            f"Received: views={views!r}"
        )
    return tuple(views)


def check_plain_images(x):
    """Raises unless `x` is one batch of uint8 or floating images."""
    if isinstance(x, dict):
        raise ValueError(
            "IMSVDModel(views=...) builds the two views itself: give fit and "
            "evaluate plain batches of images (x, (x,) or (x, y)), not views. "
            f"Received: a dict with keys {sorted(x, key=str)}"
        )
    if isinstance(x, (list, tuple)) or not hasattr(x, "dtype"):
        raise ValueError(
            "IMSVDModel(views=...) builds the two views itself: give fit and "
            "evaluate plain batches of images (x, (x,) or (x, y)), not views. "
            f"Received: x of type {type(x).__name__}"
        )
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype != "uint8" and "float" not in dtype:
        raise TypeError(
            "Images must be uint8 (0-255, scaled by 1/255) or floating (in "
            "[0, 1]); cast other integer images to one of them. "
            f"Received: images.dtype={dtype}"
        )
    if len(x.shape) != 4:
        raise ValueError(
            "IMSVDModel(views=...) takes batches of images (N, H, W, C). "
            f"Received: x.shape={tuple(x.shape)}"
        )


def apply_views(views, images):
    """`{"view_1": view_1(x), "view_2": view_2(x)}` for images `x` in [0, 1]."""
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        images = ops.cast(images, "float32") / 255.0
    return {key: view(images, training=True) for key, view in zip(VIEW_KEYS, views)}


def view_shape(views, image_shape):
    """The shape of the views of images of `image_shape` (builds the views)."""
    shapes = []
    for view in views:
        spec = view.compute_output_spec(keras.KerasTensor(image_shape, "float32"))
        shapes.append(tuple(spec.shape))
        if not view.built:  # its layers are, by the call above
            view.build(image_shape)
    if shapes[0][1:] != shapes[1][1:]:
        raise ValueError(
            "Both views must have the same image shape. Received: view_1 "
            f"shape={shapes[0]}, view_2 shape={shapes[1]} for images of shape "
            f"{tuple(image_shape)}"
        )
    return shapes[0]


def step_with_views(model, step, *args):
    """Runs `step` (Keras' train or test step) on the views of the batch.

    Keras calls a JAX step with `(state, data)`, a pure function of the state;
    the views then read and advance the seed states held in `state` (the
    non-trainable variables), and the step gets the advanced ones.
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(args[-1])
    if len(args) == 1:
        views = apply_views(model.views, x)
        return step(keras.utils.pack_x_y_sample_weight(views, y, sample_weight))
    state = args[0]
    variables = model.trainable_variables + model.non_trainable_variables
    values = list(state[0]) + list(state[1])
    with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
        views = apply_views(model.views, x)
    non_trainable = [
        scope.get_current_value(variable) for variable in model.non_trainable_variables
    ]
    state = (state[0], non_trainable, *state[2:])
    return step(state, keras.utils.pack_x_y_sample_weight(views, y, sample_weight))
