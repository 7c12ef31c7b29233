"""Baseline: a ResNet trained with cross-entropy."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fer_zoo.models.base import FERTask
from fer_zoo.models.components.backbones import build_backbone


class Baseline(FERTask):
    """ResNet-18 (or 34/50) image classifier with plain (soft-target) cross-entropy.

    Random initialisation by default; ``weights`` takes any spec of
    :func:`fer_zoo.weights.resolve` (a registered tag, a local file, ``local-dir:``).
    ``freeze_backbone`` turns it into a linear probe of the start's frozen features.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str | None = None,
        dropout: float = 0.0,
        freeze_backbone: bool = False,
        **kwargs: Any,
    ) -> None:
        """Build the network.

        Args:
            backbone: ``resnet18``, ``resnet34`` or ``resnet50``.
            weights: backbone weight spec (None: random init).
            dropout: dropout before the classifier.
            freeze_backbone: linear probe: the backbone keeps its weights and its BatchNorm
                statistics (it stays in eval mode and runs without gradients); only the head trains.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(**kwargs)
        self.backbone, dim = build_backbone(backbone, weights)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, self.num_classes))
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> Baseline:
        """Switch modes; a frozen backbone stays in eval mode (its BatchNorm statistics are the start's)."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, C)``."""
        if self.freeze_backbone:
            with torch.no_grad():
                features = self.backbone(images)
            return self.head(features)
        return self.head(self.backbone(images))
