"""A PyTorch transcription of the published CIFAR training step, and its Keras twin.

The torch side is written from the published code's behaviour (see the
fidelity notes): a CIFAR-style residual encoder (3x3 stride-1 stem, basic
blocks, a stride-2 block with a 1x1 shortcut, global average pooling), the
projector `[Linear(bias) -> BN -> ReLU]` + `Linear(no bias)`, the joint
cross-entropy on softmax codes clamped at 1e-8, and
`torch.optim.SGD(momentum=0.9, weight_decay=5e-4)` whose learning rate is set
every step from `published_schedule`. The Keras side is the same network as
an `IMSVDModel` trained with `TorchSGD`; `copy_weights` starts both alike.
"""

import keras
import numpy as np
import torch
from torch import nn

import keras_imsvd

MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
EPSILON = 1e-8


class BasicBlock(nn.Module):
    """torchvision's basic residual block (two 3x3 convolutions, 1x1 shortcut)."""

    def __init__(self, inputs, filters, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, filters, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.shortcut = None
        if stride != 1 or inputs != filters:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, filters, 1, stride, bias=False),
                nn.BatchNorm2d(filters),
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.shortcut is None else self.shortcut(x)))


class TorchNet(nn.Module):
    """Encoder and projector; `forward` gives the projector output `(N, D)`."""

    def __init__(self, channels, width, hidden, embedding):
        super().__init__()
        self.stem_conv = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        self.block0 = BasicBlock(width, width, 1)
        self.block1 = BasicBlock(width, 2 * width, 2)
        self.dense_0 = nn.Linear(2 * width, hidden)
        self.batch_norm_0 = nn.BatchNorm1d(hidden)
        self.dense_1 = nn.Linear(hidden, embedding, bias=False)

    def features(self, x):  # x: (N, C, H, W)
        x = torch.relu(self.stem_bn(self.stem_conv(x)))
        return self.block1(self.block0(x)).mean(dim=(2, 3))  # (N, 2 width)

    def forward(self, x):
        x = torch.relu(self.batch_norm_0(self.dense_0(self.features(x))))
        return self.dense_1(x)


def torch_loss(z1, z2, bin_size):
    """The joint cross-entropy of the published code, term by term."""
    n = z1.shape[0]
    p1 = torch.softmax(z1.view(n, -1, bin_size), -1).clamp(min=EPSILON)
    p2 = torch.softmax(z2.view(n, -1, bin_size), -1).clamp(min=EPSILON)
    k = p1.shape[1]
    invariance = -torch.log((p1 * p2).sum(-1)).mean()
    joint = p1.reshape(n, -1).T @ p2.reshape(n, -1) / n  # (D, D)
    plogp = joint * torch.log(joint)
    diagonal = torch.diagonal(plogp).sum() / k
    mask = torch.block_diag(*[torch.ones(bin_size, bin_size)] * k).to(joint.dtype)
    off_diagonal = (plogp * (1 - mask)).sum() / (k * (k - 1))
    return invariance + diagonal + off_diagonal


def keras_model(image_shape, width, hidden, embedding, bin_size):
    """The twin of `TorchNet` as an `IMSVDModel`, built, not compiled."""
    bn = {"epsilon": 1e-5, "momentum": 0.9}
    layers = keras.layers

    def conv(filters, size, stride, name):
        padding = "same" if stride == 1 else "valid"
        return layers.Conv2D(filters, size, stride, padding, use_bias=False, name=name)

    def block(x, filters, stride, name):
        shortcut = x
        if stride != 1:  # torch's symmetric padding of 1
            x = layers.ZeroPadding2D(1)(x)
        x = conv(filters, 3, stride, f"{name}_conv1")(x)
        x = layers.ReLU()(layers.BatchNormalization(**bn, name=f"{name}_bn1")(x))
        x = conv(filters, 3, 1, f"{name}_conv2")(x)
        x = layers.BatchNormalization(**bn, name=f"{name}_bn2")(x)
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = conv(filters, 1, stride, f"{name}_proj_conv")(shortcut)
            shortcut = layers.BatchNormalization(**bn, name=f"{name}_proj_bn")(shortcut)
        return layers.ReLU()(layers.Add()([x, shortcut]))

    inputs = keras.Input(image_shape)
    x = conv(width, 3, 1, "stem_conv")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(**bn, name="stem_bn")(x))
    x = block(x, width, 1, "block0")
    x = block(x, 2 * width, 2, "block1")
    encoder = keras.Model(inputs, layers.GlobalAveragePooling2D()(x))
    projector = keras_imsvd.models.build_projector(f"{hidden}-{embedding}")
    model = keras_imsvd.IMSVDModel(encoder, projector=projector, bin_size=bin_size)
    model.build({"view_1": (None, *image_shape), "view_2": (None, *image_shape)})
    return model


def layer_pairs(model, net):
    """`(keras_layer, torch_module)` for every layer that holds weights."""
    pairs = [(model.encoder.get_layer(n), getattr(net, n)) for n in ("stem_conv",)]
    pairs.append((model.encoder.get_layer("stem_bn"), net.stem_bn))
    for name in ("block0", "block1"):
        torch_block = getattr(net, name)
        for part in ("conv1", "bn1", "conv2", "bn2"):
            pairs.append(
                (model.encoder.get_layer(f"{name}_{part}"), getattr(torch_block, part))
            )
        if torch_block.shortcut is not None:
            pairs.append(
                (model.encoder.get_layer(f"{name}_proj_conv"), torch_block.shortcut[0])
            )
            pairs.append(
                (model.encoder.get_layer(f"{name}_proj_bn"), torch_block.shortcut[1])
            )
    for name in ("dense_0", "batch_norm_0", "dense_1"):
        pairs.append((model.projector.get_layer(name), getattr(net, name)))
    return pairs


def _torch_arrays(module):
    """The module's tensors as Keras holds them: `{attribute: array}`."""
    if isinstance(module, nn.Conv2d):
        return {"kernel": module.weight.detach().permute(2, 3, 1, 0)}  # OIHW -> HWIO
    if isinstance(module, nn.Linear):
        arrays = {"kernel": module.weight.detach().T}  # (out, in) -> (in, out)
        if module.bias is not None:
            arrays["bias"] = module.bias.detach()
        return arrays
    return {
        "gamma": module.weight.detach(),
        "beta": module.bias.detach(),
        "moving_mean": module.running_mean,
        "moving_variance": module.running_var,
    }


def copy_weights(net, model):
    """Gives the Keras `model` the current weights of the torch `net`."""
    for layer, module in layer_pairs(model, net):
        for attribute, value in _torch_arrays(module).items():
            getattr(layer, attribute).assign(value.cpu().numpy().astype("float32"))


def weight_differences(net, model):
    """`{"layer/attribute": max |keras - torch| / max |torch|}`."""
    out = {}
    for layer, module in layer_pairs(model, net):
        for attribute, value in _torch_arrays(module).items():
            reference = value.cpu().double().numpy()
            ours = keras.ops.convert_to_numpy(getattr(layer, attribute))
            scale = max(np.abs(reference).max(), 1e-12)
            out[f"{layer.name}/{attribute}"] = np.abs(ours - reference).max() / scale
    return out


def learning_rates(schedule, steps):
    return [float(keras.ops.convert_to_numpy(schedule(step))) for step in range(steps)]


def train_torch(net, batches, rates, bin_size):
    """SGD steps of the published CIFAR recipe; returns the loss of each step."""
    optimizer = torch.optim.SGD(
        net.parameters(), lr=rates[0], momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
    )
    dtype = next(net.parameters()).dtype
    net.train()
    losses = []
    for (x1, x2), rate in zip(batches, rates):
        for group in optimizer.param_groups:
            group["lr"] = rate
        views = [torch.from_numpy(x.transpose(0, 3, 1, 2)).to(dtype) for x in (x1, x2)]
        # Each view goes through the network on its own, as published.
        loss = torch_loss(net(views[0]), net(views[1]), bin_size)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def train_keras(model, batches, schedule):
    """The same steps with `TorchSGD`; returns the loss of each step."""
    model.compile(
        optimizer=keras_imsvd.optimizers.TorchSGD(
            schedule, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
        )
    )
    losses = []
    for x1, x2 in batches:
        model.reset_metrics()
        logs = model.train_on_batch(
            {"view_1": x1.astype("float32"), "view_2": x2.astype("float32")},
            return_dict=True,
        )
        losses.append(float(logs["loss"]))
    return losses


def view_batches(rng, steps, batch_size, image_shape, noise=0.1):
    """Two noisy copies of random images per step, in [0, 1], float64 NHWC."""
    batches = []
    for _ in range(steps):
        images = rng.random((batch_size, *image_shape))
        views = [
            np.clip(images + noise * rng.normal(size=images.shape), 0, 1)
            for _ in range(2)
        ]
        batches.append(tuple(views))
    return batches
