"""The model of a run: the encoder, the IMSVD model and its optimizer, and the
precision policy."""

import keras

from keras_imsvd import backbones
from keras_imsvd.models import IMSVDModel
from keras_imsvd.optimizers import LARS
from keras_imsvd.optimizers import TorchSGD
from keras_imsvd.optimizers import published_schedule
from keras_imsvd.training.data import make_views


def build_encoder(architecture, image_shape):
    # The input normalisation of the published script of each architecture
    # (imsvd_cifar.py for the CIFAR ResNet-18, imsvd.py for ResNet-50), for RGB.
    published = {"resnet18_cifar": "cifar10", "resnet50": "imagenet"}
    normalization = published.get(architecture) if image_shape[-1] == 3 else None
    return getattr(backbones, architecture)(
        input_shape=image_shape, normalization=normalization
    )


# `--jit-compile` to `Model.compile(jit_compile=...)`.
_JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def build_model(config, image_shape, steps_per_epoch, data_shape=None):
    """The compiled IMSVD model of a run; its encoder reads `image_shape`.

    With `config.augment_on == "device"` the model makes the views itself
    from images of `data_shape` (the stored images, before the views).
    """
    views = None
    if config.augment_on == "device":
        views = make_views(config, image_shape[-1])
    model = IMSVDModel(
        build_encoder(config.architecture, image_shape),
        projector=config.projector,
        bin_size=config.bin_size,
        temperature=config.temperature,
        invariance_weight=config.invariance_weight,
        diagonal_weight=config.diagonal_weight,
        off_diagonal_weight=config.off_diagonal_weight,
        views=views,
    )
    if views is None:
        model.build({"view_1": (None, *image_shape), "view_2": (None, *image_shape)})
    else:
        model.build((None, *data_shape))
    schedule = published_schedule(
        config.base_learning_rate,
        batch_size=config.batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
    )
    if config.optimizer == "lars":
        optimizer = LARS(
            learning_rate=schedule, momentum=0.9, weight_decay=config.weight_decay
        )
    elif config.optimizer == "sgd":
        # The published CIFAR optimizer, torch.optim.SGD: L2 decay added to
        # the gradient before the momentum, on every variable.
        optimizer = TorchSGD(
            learning_rate=schedule, momentum=0.9, weight_decay=config.weight_decay
        )
    else:
        # Keras' SGD, whose decay acts on the weights directly (decoupled).
        optimizer = keras.optimizers.SGD(
            learning_rate=schedule, momentum=0.9, weight_decay=config.weight_decay
        )
    model.compile(optimizer=optimizer, jit_compile=_JIT_COMPILE[config.jit_compile])
    # Built now so that a resumed run can load the optimizer's variables.
    model.optimizer.build(model.trainable_variables)
    return model


def gpu_available():
    """Whether the backend sees a GPU (each backend asked in its own terms)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def precision_policy(name):
    if name != "auto":
        return name
    return "mixed_float16" if gpu_available() else "mixed_bfloat16"
