"""The published IMSVD training step in plain PyTorch: the speed baseline of a step.

Written from the published code's behaviour (see docs/design.md and the
fidelity notes): torchvision-style ResNets (ResNet-18 with the CIFAR stem, and
ResNet-50 v1.5 with kaiming fan-out init and the last BatchNorm of each block
at zero), the projector `[Linear(bias) -> BN -> ReLU]` + `Linear(no bias)`,
each view through the network on its own, soft codes `softmax(z / t)` per
group of `b` clamped at 1e-8, the loss of `published_loss.py` (in float32),
and `torch.optim.SGD(momentum=0.9, weight_decay=5e-4)`. Mixed precision is
`torch.autocast` (float16 with a `GradScaler` on CUDA, bfloat16 on the CPU);
the network runs in `channels_last`. `train_step.py` times it beside the
library's step.
"""

import os
import sys

import torch
from torch import nn

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.dirname(_HERE))

from published_loss import PublishedJointCrossEntropy  # noqa: E402

from tests.parity._reference import BasicBlock  # noqa: E402

EPSILON = 1e-8


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits in the 3x3 conv."""

    def __init__(self, inputs, filters, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, filters, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters)
        self.conv2 = nn.Conv2d(filters, filters, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(filters)
        self.conv3 = nn.Conv2d(filters, 4 * filters, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * filters)
        self.shortcut = None
        if stride != 1 or inputs != 4 * filters:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, 4 * filters, 1, stride, bias=False),
                nn.BatchNorm2d(4 * filters),
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.shortcut is None else self.shortcut(x)))


def _stages(block, inputs, plan, expansion):
    """`nn.Sequential` of residual stages; `plan` is `((filters, blocks), ...)`."""
    layers = []
    for stage, (filters, blocks) in enumerate(plan):
        for index in range(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            layers.append(block(inputs, filters, stride))
            inputs = filters * expansion
    return nn.Sequential(*layers), inputs


def resnet18_cifar(width=64):
    """ResNet-18 with the 3x3 stride-1 stem and no max-pool; `(N, 8 width)` out."""
    plan = [(width * m, 2) for m in (1, 2, 4, 8)]
    stages, features = _stages(BasicBlock, width, plan, 1)
    network = nn.Sequential(
        nn.Conv2d(3, width, 3, 1, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        stages,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    network.num_features = features
    return network


def resnet50():
    """torchvision's ResNet-50 without its classifier; `(N, 2048)` out."""
    plan = ((64, 3), (128, 4), (256, 6), (512, 3))
    stages, features = _stages(Bottleneck, 64, plan, 4)
    network = nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
        stages,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    for module in network.modules():
        if isinstance(module, Bottleneck):
            nn.init.zeros_(module.bn3.weight)
    network.num_features = features
    return network


def projector(inputs, widths):
    """`[Linear(bias) -> BN -> ReLU]` per hidden width, then `Linear(no bias)`."""
    layers = []
    for width in widths[:-1]:
        layers += [nn.Linear(inputs, width), nn.BatchNorm1d(width), nn.ReLU(True)]
        inputs = width
    layers.append(nn.Linear(inputs, widths[-1], bias=False))
    return nn.Sequential(*layers)


def soft_codes(z, bin_size, temperature=1.0):
    """`softmax(z / t)` over each group of `bin_size`, clamped at 1e-8: `(N, K, b)`."""
    n = z.shape[0]
    return torch.softmax(z.view(n, -1, bin_size) / temperature, -1).clamp(min=EPSILON)


class PublishedIMSVD(nn.Module):
    """Backbone and projector; `forward(x1, x2)` gives the float32 IMSVD loss."""

    def __init__(self, backbone, widths, bin_size, device=None):
        super().__init__()
        self.backbone = backbone
        self.projector = projector(backbone.num_features, widths)
        self.bin_size = bin_size
        self.loss = PublishedJointCrossEntropy(
            widths[-1] // bin_size, bin_size, device=device
        )

    def embed(self, x):
        return self.projector(self.backbone(x))

    def forward(self, x1, x2):
        # Each view through the network on its own, as published.
        z1, z2 = self.embed(x1), self.embed(x2)
        with torch.autocast(z1.device.type, enabled=False):
            p1 = soft_codes(z1.float(), self.bin_size)
            p2 = soft_codes(z2.float(), self.bin_size)
            return self.loss(p1, p2)


def build(setting, device, width=64):
    """`PublishedIMSVD` of the CIFAR-10 (ResNet-18 of `width`) or ImageNet
    setting, on `device`."""
    if setting == "cifar":
        model = PublishedIMSVD(resnet18_cifar(width), (1024, 1024, 1024), 32, device)
    else:
        model = PublishedIMSVD(resnet50(), (8192, 8160), 80, device)
    return model.to(device=device, memory_format=torch.channels_last)


def make_train_step(model, mixed_precision, learning_rate=0.1):
    """`step(x1, x2) -> loss` of SGD(momentum 0.9, weight decay 5e-4).

    The views are NCHW tensors on the model's device; with `mixed_precision`
    the network runs under `torch.autocast` (float16 and a `GradScaler` on
    CUDA, bfloat16 on the CPU) and the loss stays float32.
    """
    device = next(model.parameters()).device.type
    dtype = torch.float16 if device == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(
        device, enabled=mixed_precision and dtype == torch.float16
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=learning_rate, momentum=0.9, weight_decay=5e-4
    )
    model.train()

    def step(x1, x2):
        with torch.autocast(device, dtype=dtype, enabled=mixed_precision):
            loss = model(x1, x2)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    return step


def to_views(array, device):
    """NHWC NumPy images to an NCHW `channels_last` tensor on `device`."""
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2).to(device)
    return tensor.contiguous(memory_format=torch.channels_last)
