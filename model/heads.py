"""RPN, box classifier and mask head (docs/model.md §2.2), batched over N images."""
from __future__ import annotations

from torch import nn

from .backbone import SamePad2d, batch_norm


class RPN(nn.Module):
    """Region proposal network, shared over P2..P6.

    forward(feature [N,C,H,W]) -> logits [N, H*W*A, 2], probs [N, H*W*A, 2],
    deltas [N, H*W*A, 4]; row (y*W + x)*A + a, class 0 = background.
    """

    def __init__(self, anchors_per_location: int, anchor_stride: int, depth: int, hidden: int = 512):
        super().__init__()
        self.anchors_per_location = anchors_per_location
        self.padding = SamePad2d(kernel_size=3, stride=anchor_stride)
        self.conv_shared = nn.Conv2d(depth, hidden, kernel_size=3, stride=anchor_stride)
        self.relu = nn.ReLU(inplace=True)
        self.conv_class = nn.Conv2d(hidden, 2 * anchors_per_location, kernel_size=1)
        self.softmax = nn.Softmax(dim=2)
        self.conv_bbox = nn.Conv2d(hidden, 4 * anchors_per_location, kernel_size=1)

    def forward(self, x):
        n = x.shape[0]
        x = self.relu(self.conv_shared(self.padding(x)))
        logits = self.conv_class(x).permute(0, 2, 3, 1).contiguous().view(n, -1, 2)
        probs = self.softmax(logits)
        deltas = self.conv_bbox(x).permute(0, 2, 3, 1).contiguous().view(n, -1, 4)
        return logits, probs, deltas


class Classifier(nn.Module):
    """Box head on [M, C, P, P] crops -> logits [M,K], probs [M,K], deltas [M,K,4]."""

    def __init__(self, depth: int, pool_size: int, num_classes: int, fc: int = 1024):
        super().__init__()
        self.depth = depth
        self.pool_size = pool_size
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(depth, fc, kernel_size=pool_size, stride=1)
        self.bn1 = batch_norm(fc)
        self.conv2 = nn.Conv2d(fc, fc, kernel_size=1, stride=1)
        self.bn2 = batch_norm(fc)
        self.relu = nn.ReLU(inplace=True)
        self.linear_class = nn.Linear(fc, num_classes)
        self.softmax = nn.Softmax(dim=1)
        self.linear_bbox = nn.Linear(fc, num_classes * 4)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = x.flatten(1)
        logits = self.linear_class(x)
        probs = self.softmax(logits)
        deltas = self.linear_bbox(x).view(x.shape[0], self.num_classes, 4)
        return logits, probs, deltas


class Mask(nn.Module):
    """Mask head on [M, C, 14, 14] crops -> probabilities [M, K, 28, 28]."""

    def __init__(self, depth: int, pool_size: int, num_classes: int, channels: int = 256):
        super().__init__()
        self.depth = depth
        self.pool_size = pool_size
        self.num_classes = num_classes
        self.padding = SamePad2d(kernel_size=3, stride=1)
        self.conv1 = nn.Conv2d(depth, channels, kernel_size=3, stride=1)
        self.bn1 = nn.BatchNorm2d(channels, eps=0.001)  # default momentum 0.1 like the original
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1)
        self.bn2 = nn.BatchNorm2d(channels, eps=0.001)
        self.conv3 = nn.Conv2d(channels, channels, kernel_size=3, stride=1)
        self.bn3 = nn.BatchNorm2d(channels, eps=0.001)
        self.conv4 = nn.Conv2d(channels, channels, kernel_size=3, stride=1)
        self.bn4 = nn.BatchNorm2d(channels, eps=0.001)
        self.deconv = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
        self.conv5 = nn.Conv2d(channels, num_classes, kernel_size=1, stride=1)
        self.sigmoid = nn.Sigmoid()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.sigmoid(self.logits(x))

    def logits(self, x):
        """Pre-sigmoid output [M, K, 28, 28]."""
        x = self.relu(self.bn1(self.conv1(self.padding(x))))
        x = self.relu(self.bn2(self.conv2(self.padding(x))))
        x = self.relu(self.bn3(self.conv3(self.padding(x))))
        x = self.relu(self.bn4(self.conv4(self.padding(x))))
        x = self.relu(self.deconv(x))
        return self.conv5(x)
