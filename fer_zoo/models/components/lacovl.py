"""LaCoVL-FER building blocks: image and landmark pyramids, BGCA, cross-similarity attention, attention blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models

from fer_zoo.models.components.backbones import PYRAMID_BACKBONES, backbone_levels
from fer_zoo.weights import load_into

PYRAMID_CHANNELS = (64, 128, 256)


# --- image pyramid: IR-50 style (POSTER++) or ResNet-18 ---------------------------------
class IRBlock(nn.Module):
    """ArcFace "IR" bottleneck: BN-conv3x3-BN-PReLU-conv3x3(stride)-BN plus a projected shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        """Build the block."""
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.MaxPool2d(1, stride)
            if cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: Tensor) -> Tensor:
        """Residual output."""
        return self.body(x) + self.shortcut(x)


class ImagePyramid(nn.Module):
    """Trainable three-scale feature pyramid.

    64/128/256 channels at strides 2/4/8 (IR) or 4/8/16 (ResNet); an imported network's stride-4/8/16 levels
    (``faceres``: 128/256/512, ``mobileface``: 32/32/64, ``mobilenetv2``: 24/32/96, ``efficientnet_lite0``: 24/40/112, ``facenet``: 192/256/896).

    ``ir50`` is the first three stages of an IR-50 (3, 4 and 14 units), the face-recognition
    backbone of POSTER++; ``resnet18`` is torchvision's layer1-3 (cheaper on CPU).
    """

    def __init__(self, name: str = "ir50", weights: str | None = None) -> None:
        """Build the pyramid; ``weights`` is any weight spec (e.g. an MS-Celeb-1M IR-50 file)."""
        super().__init__()
        if name == "ir50":
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
            stages, cin = [], 64
            for cout, units in zip(PYRAMID_CHANNELS, (3, 4, 14)):
                stages.append(
                    nn.Sequential(*[IRBlock(cin if i == 0 else cout, cout, 2 if i == 0 else 1) for i in range(units)])
                )
                cin = cout
            self.stages = nn.ModuleList(stages)
        elif name == "resnet18":
            net = models.resnet18(weights=None)
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3])
        elif name in PYRAMID_BACKBONES:
            # an imported network's stride-4/8/16 levels (its weights are loaded before it is cut)
            levels = backbone_levels(name, weights)
            self.stem = levels[0][0]
            self.stages = nn.ModuleList(m for m, _ in levels[1:4])
            self.channels = tuple(c for _, c in levels[1:4])
            return
        else:
            raise ValueError(f"model.pyramid must be ir50, resnet18 or one of {PYRAMID_BACKBONES}, got {name!r}")
        self.channels = PYRAMID_CHANNELS
        load_into(self, weights, option="model.weights")

    def forward(self, images: Tensor) -> list[Tensor]:
        """Three feature maps, finest first."""
        x, out = self.stem(images), []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class LandmarkNet(nn.Module):
    """A MobileFaceNet-style landmark regressor: depthwise-separable pyramid + a 68-point head.

    The three pyramid levels (64, 128, 256 channels) feed LaCoVL's BGCA blocks; the head
    regresses 68 points as ``(x, y)`` in [0, 1] of the input. In LaCoVL it is frozen: load a
    pretrained network (``landmark_weights``) or pretrain it with ``fer-zoo pretrain-landmarks``.
    """

    def __init__(self, input_size: int = 112) -> None:
        """Build the network for ``input_size`` pixel inputs."""
        super().__init__()
        self.input_size = input_size

        def dw(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
                nn.BatchNorm2d(cin),
                nn.PReLU(cin),
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.PReLU(cout),
            )

        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.PReLU(32))
        self.stages = nn.ModuleList([
            nn.Sequential(dw(32, 64, 2), dw(64, 64, 1)),
            nn.Sequential(dw(64, 128, 2), dw(128, 128, 1)),
            nn.Sequential(dw(128, 256, 2), dw(256, 256, 1), dw(256, 256, 1)),
        ])  # fmt: skip
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 136))

    def pyramid(self, images: Tensor) -> list[Tensor]:
        """Three feature maps (64/128/256 channels) of the resized input."""
        if images.shape[-1] != self.input_size:
            images = F.interpolate(
                images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        x, out = self.stem(images), []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, images: Tensor) -> Tensor:
        """68 landmarks ``(B, 68, 2)`` in [0, 1] of the image."""
        return self.head(self.pyramid(images)[-1]).view(-1, 68, 2).sigmoid()


# --- attention blocks ---------------------------------------------------------------------
class CrossAttention(nn.Module):
    """Pre-norm multi-head attention of ``queries`` over ``context`` (no residual)."""

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0) -> None:
        """Build the block."""
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(self, queries: Tensor, context: Tensor) -> Tensor:
        """Attended values ``(B, Nq, D)``."""
        kv = self.norm_kv(context)
        return self.attn(self.norm_q(queries), kv, kv, need_weights=False)[0]


class FeedForward(nn.Module):
    """Pre-norm MLP (ratio 4) with layer-scale on its residual."""

    def __init__(self, dim: int, layer_scale: float | None = None, dropout: float = 0.0) -> None:
        """Build the block; ``layer_scale`` initialises a per-channel residual scale (None: 1)."""
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim)
        )
        self.scale = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale is not None else None

    def forward(self, x: Tensor) -> Tensor:
        """``x + scale * MLP(x)``."""
        out = self.net(x)
        return x + (out * self.scale if self.scale is not None else out)


class BGCA(nn.Module):
    """Bi-branch Gated Cross Attention (recommended reading of LaCoVL, methods.md section 1.3).

    ``O1 = CrossAttn(Q=L, K=V=X)`` (POSTER++: landmarks query the image), ``O2 = CrossAttn(Q=X,
    K=V=L)`` (POSTER v1's reverse direction), a token- and channel-wise gate
    ``g = sigmoid(W [O1; O2])``, ``F = X + g O1 + (1 - g) O2``, then an FFN with layer-scale 1e-5.
    """

    def __init__(self, dim: int, heads: int = 8) -> None:
        """Build the block."""
        super().__init__()
        self.landmark_queries = CrossAttention(dim, heads)
        self.image_queries = CrossAttention(dim, heads)
        self.gate = nn.Linear(2 * dim, dim)
        self.ffn = FeedForward(dim, layer_scale=1e-5)

    def forward(self, image_tokens: Tensor, landmark_tokens: Tensor) -> Tensor:
        """Fused tokens, shaped like ``image_tokens``."""
        o1 = self.landmark_queries(landmark_tokens, image_tokens)
        o2 = self.image_queries(image_tokens, landmark_tokens)
        g = torch.sigmoid(self.gate(torch.cat([o1, o2], dim=-1)))
        return self.ffn(image_tokens + g * o1 + (1 - g) * o2)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + MLP block."""

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0) -> None:
        """Build the block."""
        super().__init__()
        self.attn = CrossAttention(dim, heads, dropout)
        self.ffn = FeedForward(dim, dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        """Self-attention then MLP, both residual."""
        return self.ffn(x + self.attn(x, x))


class ViT(nn.Module):
    """A class token plus positional embeddings in front of ``depth`` transformer blocks."""

    def __init__(self, dim: int, tokens: int, depth: int = 2, heads: int = 8, dropout: float = 0.0) -> None:
        """Build the encoder for ``tokens`` input tokens."""
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """``(class token (B, D), patch tokens (B, N, D))``."""
        x = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos
        x = self.norm(self.blocks(x))
        return x[:, 0], x[:, 1:]


class CrossSimilarityAttention(nn.Module):
    """QCS's dual cross-similarity attention between anchor tokens ``X_a`` and positive tokens ``X_p``.

    ``[K1, V1] = W LN(X_a)``, ``[Q2, V2] = W LN(X_p)`` (one shared projection). ``D = cdist(Q2, K1)``,
    ``S = max(D') - D'`` with ``D' = D - min(D)``. ``a1 = softmax_N1(sum_rows normalize_N1(S))``
    reweights the anchor tokens and ``a2 = softmax_N2(sum_cols normalize_N2(S))`` the positive
    ones: ``X <- X + a * V``, then a pre-norm MLP residual.

    With ``qcs_details`` (default) it follows the released QCS code (``utils.Attn_DCS_S`` and
    ``CrossAttention``): the min and max of ``D`` are taken over the whole batch, and one MLP
    (and its LayerNorm) serves anchor and positive. Without it, min and max are per sample and
    anchor and positive have MLPs of their own (this project's first reading).
    """

    def __init__(self, dim: int, qcs_details: bool = True) -> None:
        """Build the block."""
        super().__init__()
        self.qcs_details = qcs_details
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, 2 * dim)
        self.ffn_a = FeedForward(dim)
        self.ffn_p = self.ffn_a if qcs_details else FeedForward(dim)

    def forward(self, anchor: Tensor, positive: Tensor) -> tuple[Tensor, Tensor]:
        """Refined ``(anchor, positive)`` tokens."""
        k1, v1 = self.proj(self.norm(anchor)).chunk(2, dim=-1)
        q2, v2 = self.proj(self.norm(positive)).chunk(2, dim=-1)
        distance = torch.cdist(q2, k1)  # (B, N2, N1)
        dims = (0, 1, 2) if self.qcs_details else (1, 2)  # batch-wide or per-sample min and max
        shifted = distance - distance.amin(dim=dims, keepdim=True)
        similarity = shifted.amax(dim=dims, keepdim=True) - shifted
        a1 = F.normalize(similarity, dim=2).sum(1).softmax(-1)  # over anchor tokens N1
        a2 = F.normalize(similarity, dim=1).sum(2).softmax(-1)  # over positive tokens N2
        return self.ffn_a(anchor + a1.unsqueeze(-1) * v1), self.ffn_p(positive + a2.unsqueeze(-1) * v2)
