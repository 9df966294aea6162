"""ResNet (Caffe/Keras style: stride on the first 1x1 conv) + FPN, docs/model.md §2.1.

Module and attribute names equal the original's so that its state_dict
(``fpn.C1.0.weight`` ...) loads strictly.
"""
from __future__ import annotations

import math
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # Keras 0.99


class SamePad2d(nn.Module):
    """TF "SAME" padding as explicit zero padding before a conv/pool without padding.

    For a dimension of size n: out = ceil(n/s), total = max((out-1)*s + k - n, 0),
    first = total // 2 before, the rest after (extra pixel bottom/right).
    (The original swaps H and W when computing the totals; inputs are square,
    so this is the same.)
    """

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride)

    def _pads(self, n: int):
        out = math.ceil(n / self.stride)
        total = max((out - 1) * self.stride + self.kernel_size - n, 0)
        first = total // 2
        return first, total - first

    def forward(self, x):
        h, w = int(x.shape[2]), int(x.shape[3])
        top, bottom = self._pads(h)
        left, right = self._pads(w)
        return F.pad(x, (left, right, top, bottom), "constant", 0.0)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def batch_norm(c: int, momentum: float = BN_MOMENTUM) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=momentum)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride)
        self.bn1 = batch_norm(planes)
        self.padding2 = SamePad2d(kernel_size=3, stride=1)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3)
        self.bn2 = batch_norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1)
        self.bn3 = batch_norm(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(self.padding2(out))))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        return self.relu(out + residual)


def make_stages(blocks: Sequence[int], base_width: int = 64) -> List[nn.Module]:
    """C1..C5 as in the original ``ResNet.__init__`` (``make_layer``)."""
    c1 = nn.Sequential(
        nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3),
        batch_norm(base_width),
        nn.ReLU(inplace=True),
        SamePad2d(kernel_size=3, stride=2),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )
    stages = [c1]
    inplanes = base_width
    for i, n in enumerate(blocks):
        planes = base_width * (2 ** i)
        stride = 1 if i == 0 else 2
        downsample = None
        if stride != 1 or inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride),
                batch_norm(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(inplanes, planes, stride, downsample)]
        inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(inplanes, planes) for _ in range(1, n)]
        stages.append(nn.Sequential(*layers))
    return stages


class FPN(nn.Module):
    """Feature pyramid (docs/model.md §2.1): returns [P2, P3, P4, P5, P6]."""

    def __init__(self, C1, C2, C3, C4, C5, out_channels: int = 256, base_width: int = 64):
        super().__init__()
        self.out_channels = out_channels
        self.C1, self.C2, self.C3, self.C4, self.C5 = C1, C2, C3, C4, C5
        self.P6 = nn.MaxPool2d(kernel_size=1, stride=2)
        c2, c3, c4, c5 = (base_width * 4 * 2 ** i for i in range(4))
        self.P5_conv1 = nn.Conv2d(c5, out_channels, kernel_size=1)
        self.P5_conv2 = nn.Sequential(SamePad2d(3, 1), nn.Conv2d(out_channels, out_channels, kernel_size=3))
        self.P4_conv1 = nn.Conv2d(c4, out_channels, kernel_size=1)
        self.P4_conv2 = nn.Sequential(SamePad2d(3, 1), nn.Conv2d(out_channels, out_channels, kernel_size=3))
        self.P3_conv1 = nn.Conv2d(c3, out_channels, kernel_size=1)
        self.P3_conv2 = nn.Sequential(SamePad2d(3, 1), nn.Conv2d(out_channels, out_channels, kernel_size=3))
        self.P2_conv1 = nn.Conv2d(c2, out_channels, kernel_size=1)
        self.P2_conv2 = nn.Sequential(SamePad2d(3, 1), nn.Conv2d(out_channels, out_channels, kernel_size=3))

    def forward(self, x) -> List[torch.Tensor]:
        x = self.C1(x)
        c2 = self.C2(x)
        c3 = self.C3(c2)
        c4 = self.C4(c3)
        c5 = self.C5(c4)
        p5 = self.P5_conv1(c5)
        p4 = self.P4_conv1(c4) + F.interpolate(p5, scale_factor=2, mode="nearest")
        p3 = self.P3_conv1(c3) + F.interpolate(p4, scale_factor=2, mode="nearest")
        p2 = self.P2_conv1(c2) + F.interpolate(p3, scale_factor=2, mode="nearest")
        p5 = self.P5_conv2(p5)
        p4 = self.P4_conv2(p4)
        p3 = self.P3_conv2(p3)
        p2 = self.P2_conv2(p2)
        p6 = self.P6(p5)
        return [p2, p3, p4, p5, p6]
