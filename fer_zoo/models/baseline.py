"""Baseline: a ResNet trained with cross-entropy."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from fer_zoo.models.base import FERTask
from fer_zoo.models.components.backbones import build_backbone


class Baseline(FERTask):
    """ResNet-18 (or 34/50) image classifier with plain (soft-target) cross-entropy.

    Random initialisation by default; ``weights`` takes any spec of
    :func:`fer_zoo.weights.resolve` (a registered tag, a local file, ``local-dir:``).
    """

    def __init__(
        self, backbone: str = "resnet18", weights: str | None = None, dropout: float = 0.0, **kwargs: Any
    ) -> None:
        """Build the network.

        Args:
            backbone: ``resnet18``, ``resnet34`` or ``resnet50``.
            weights: backbone weight spec (None: random init).
            dropout: dropout before the classifier.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(**kwargs)
        self.backbone, dim = build_backbone(backbone, weights)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, self.num_classes))

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, C)``."""
        return self.head(self.backbone(images))
