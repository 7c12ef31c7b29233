"""LA-Net building blocks: two-branch ResNet with an FPN landmark head, adaptive Wing loss, LDE scorer."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision import models

from fer_zoo.models.components.backbones import PYRAMID_BACKBONES, backbone_levels
from fer_zoo.weights import load_into


class TwoBranchResNet(nn.Module):
    """Shared stem (conv1..layer1), then an expression branch and a landmark branch (layer2..4 each).

    Both branches start from the same (pretrained when ``weights`` is given) layer2-4. The
    landmark branch has an FPN-style top-down path (1x1 laterals to ``64 e`` channels, x2
    bilinear upsampling, sums with layer3, layer2 and layer1) to a stride-4 map; a 1x1 conv gives
    the heatmaps and its global average gives the landmark feature ``v``. With
    ``heatmap_stride=2`` (an option, not the paper) the path goes one level further, to the
    stride-2 stem feature (conv1-bn-relu), so small inputs still get fine heatmaps (48 px:
    24x24 cells instead of 12x12) at a fraction of the cost of a larger input.
    """

    def __init__(
        self, depth: str = "resnet18", weights: str | None = None, num_landmarks: int = 19, heatmap_stride: int = 4
    ) -> None:
        """Build the network.

        Args:
            depth: ``resnet18``, ``resnet50``, or an imported network with a feature pyramid (``faceres``,
                ``mobileface``, ``mobilenetv2``, ``efficientnet_lite0``, ``facenet``: stem up to stride 4, branches
                at strides 8/16/32).
            weights: weight spec of the backbone (None: random init).
            num_landmarks: heatmap channels.
            heatmap_stride: 4 (paper) or 2 (adds the stride-2 stem level to the top-down path).
        """
        super().__init__()
        if depth in ("resnet18", "resnet50"):
            net = getattr(models, depth)(weights=None)
            load_into(net, weights, option="model.weights")
            e = 1 if depth == "resnet18" else 4
            self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
            self._stride2_end = 3  # stem[:3] is conv1-bn-relu, the stride-2 feature
            stages, channels, c2 = [net.layer2, net.layer3, net.layer4], [64 * e, 128 * e, 256 * e, 512 * e], 64
            width = 64 * e
        elif depth in PYRAMID_BACKBONES:
            # An imported network cut at strides 2/4 (the shared stem) and 8/16/32 (each branch).
            levels = backbone_levels(depth, weights)
            self.stem = nn.Sequential(levels[0][0], levels[1][0])
            self._stride2_end = 1
            stages, channels, c2 = [m for m, _ in levels[2:]], [c for _, c in levels[1:]], levels[0][1]
            width = max(64, channels[0])
        else:
            raise ValueError(f"model.backbone must be resnet18, resnet50 or one of {PYRAMID_BACKBONES}, got {depth!r}")
        self.fer = nn.ModuleList(stages)
        self.lm = nn.ModuleList(copy.deepcopy(stage) for stage in stages)
        if heatmap_stride not in (2, 4):
            raise ValueError(f"model.heatmap_stride must be 2 or 4, got {heatmap_stride}")
        self.heatmap_stride = heatmap_stride
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        # the stride-2 feature's channels; only built (and in the state dict) when used.
        self.stem_lateral = nn.Conv2d(c2, width, 1) if heatmap_stride == 2 else None
        self.heatmap_head = nn.Conv2d(width, num_landmarks, 1)
        self.expression_dim, self.landmark_dim = channels[-1], width

    def expression(self, images: Tensor) -> Tensor:
        """The inference path: expression feature ``u`` ``(B, 512 e)``."""
        x = self.stem(images)
        for layer in self.fer:
            x = layer(x)
        return x.mean((2, 3))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(u, v, heatmaps)``: expression and landmark features and heatmap logits (``heatmap_stride``)."""
        c0 = self.stem[: self._stride2_end](images)  # the stride-2 feature
        c1 = self.stem[self._stride2_end :](c0)
        x = c1
        for layer in self.fer:
            x = layer(x)
        u = x.mean((2, 3))
        c2 = self.lm[0](c1)
        c3 = self.lm[1](c2)
        c4 = self.lm[2](c3)
        top = self.laterals[3](c4)
        for feature, lateral in ((c3, self.laterals[2]), (c2, self.laterals[1]), (c1, self.laterals[0])):
            top = F.interpolate(top, size=feature.shape[-2:], mode="bilinear", align_corners=False) + lateral(feature)
        v = top.mean((2, 3))  # the landmark feature stays the stride-4 level's, whatever the heatmap stride
        if self.stem_lateral is not None:
            top = F.interpolate(top, size=c0.shape[-2:], mode="bilinear", align_corners=False) + self.stem_lateral(c0)
        return u, v, self.heatmap_head(top)


def adaptive_wing(
    pred: Tensor,
    target: Tensor,
    alpha: float = 2.1,
    omega: float = 14.0,
    epsilon: float = 1.0,
    theta: float = 0.5,
) -> Tensor:
    """Element-wise adaptive Wing loss (Wang et al., ICCV 2019) between heatmaps in [0, 1]."""
    delta = (target - pred).abs()
    power = alpha - target
    small = omega * torch.log1p((delta / epsilon).pow(power))
    ratio = theta / epsilon
    a = omega * (1 / (1 + ratio**power)) * power * ratio ** (power - 1) / epsilon
    c = theta * a - omega * torch.log1p(ratio**power)
    return torch.where(delta < theta, small, a * delta - c)


class PairScorer(nn.Module):
    """LDE's learned pair score: ``fc_in``, split into halves, an MLP on ``[f1_i ; f2_j]``, softmax over 2."""

    def __init__(self, dim: int) -> None:
        """Build the layers.

        Args:
            dim: feature dimension (even).
        """
        super().__init__()
        self.fc_in = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim // 2), nn.ReLU(), nn.Linear(dim // 2, dim // 4), nn.ReLU(), nn.Linear(dim // 4, 2)
        )

    def forward(self, features: Tensor) -> Tensor:
        """Pair scores ``c_ij`` ``(B, B)`` (probability of "same label")."""
        f = self.fc_in(features)
        first, second = f.chunk(2, dim=1)
        n = len(f)
        pairs = torch.cat([first.unsqueeze(1).expand(n, n, -1), second.unsqueeze(0).expand(n, n, -1)], dim=-1)
        return self.mlp(pairs).softmax(-1)[..., 0]


def knn_mask(features: Tensor, k: int) -> Tensor:
    """Boolean ``(B, B)``: the ``k`` nearest neighbours (cosine) of each row, itself excluded."""
    f = F.normalize(features.detach(), dim=1)
    sims = f @ f.T
    sims.fill_diagonal_(float("-inf"))
    k = min(k, len(f) - 1)
    mask = torch.zeros_like(sims, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, sims.topk(k, dim=1).indices, True)
    return mask


def neighbour_distribution(scorer: PairScorer, features: Tensor, probs: Tensor, k: int) -> Tensor:
    """``d_i = sum_j w_ij softmax(z_j)`` with ``w`` the kNN-restricted, row-normalised pair scores."""
    weights = scorer(features) * knn_mask(features, k)
    weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-12)
    return weights @ probs


def expression_landmark_contrast(
    queries: Tensor,
    query_labels: Tensor,
    keys: Tensor,
    key_labels: Tensor,
    queue: Tensor,
    queue_labels: Tensor,
    temperature: float,
) -> Tensor:
    """One direction of LA-Net's EL loss.

    For query ``i`` the positives are the (global-batch) keys ``j`` with the same pseudo-label,
    itself included; the negatives are the queue entries whose stored label differs. Each
    positive gives ``-log(e^{q.k/T} / (e^{q.k/T} + sum_neg e^{q.b/T}))``, averaged over the
    positives, then over the queries. All vectors are L2-normalised by the caller.
    """
    positive_logits = queries @ keys.T / temperature  # (B, G)
    negative_logits = (queries @ queue.T / temperature).masked_fill(
        query_labels.unsqueeze(1) == queue_labels.unsqueeze(0), float("-inf")
    )
    negatives = torch.logsumexp(negative_logits, dim=1, keepdim=True)  # -inf when there is no negative
    per_pair = torch.logaddexp(positive_logits, negatives) - positive_logits
    positive_mask = (query_labels.unsqueeze(1) == key_labels.unsqueeze(0)).float()
    return ((per_pair * positive_mask).sum(1) / positive_mask.sum(1).clamp_min(1.0)).mean()
