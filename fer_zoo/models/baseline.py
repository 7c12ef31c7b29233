"""Baseline: a ResNet trained with cross-entropy."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from fer_zoo.errors import OptionError
from fer_zoo.models.base import FERTask
from fer_zoo.models.components.adapters import TowerAdapters
from fer_zoo.models.components.backbones import PYRAMID_BACKBONES, build_backbone


class Baseline(FERTask):
    """ResNet-18 (or 34/50) image classifier with plain (soft-target) cross-entropy.

    Random initialisation by default; ``weights`` takes any spec of
    :func:`fer_zoo.weights.resolve` (a registered tag, a local file, ``local-dir:``).
    ``freeze_backbone`` turns it into a linear probe of the start's frozen features; ``frozen_levels``
    fine-tunes only the top of an imported network (a cheaper fit: no backward through the frozen levels);
    ``adapter_levels`` adds zero-initialised residual adapters to the backbone (with ``freeze_backbone``: the adapter
    probe, MPA-face's visual prompts without its text tower).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str | None = None,
        dropout: float = 0.0,
        freeze_backbone: bool = False,
        frozen_levels: int = 0,
        adapter_levels: int = 0,
        adapter_every_block: bool = False,
        adapter_dim: int = 128,
        **kwargs: Any,
    ) -> None:
        """Build the network.

        Args:
            backbone: ``resnet18``, ``resnet34`` or ``resnet50``.
            weights: backbone weight spec (None: random init).
            dropout: dropout before the classifier.
            freeze_backbone: linear probe: the backbone keeps its weights and its BatchNorm
                statistics (it stays in eval mode and runs without gradients); only the head trains.
            frozen_levels: partial fine-tuning of a backbone of
                :data:`~fer_zoo.models.components.backbones.PYRAMID_BACKBONES`: its first ``k`` of five
                levels (strides 2, 4, 8, 16, 32) keep the start's weights and BatchNorm statistics (eval mode,
                no gradients) and the rest trains, so backward stops at level ``k + 1``. 0: all train.
            adapter_levels: residual adapters (:class:`~fer_zoo.models.components.adapters.TowerAdapters`) on the
                outputs of the last ``k`` of the five levels of a backbone of ``PYRAMID_BACKBONES``; they train
                with the head. 0: none.
            adapter_every_block: an adapter after every block of those levels instead of one per level.
            adapter_dim: the adapters' bottleneck width (capped at a site's channels).
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(**kwargs)
        self.backbone, dim = build_backbone(backbone, weights)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, self.num_classes))
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        if frozen_levels and (backbone not in PYRAMID_BACKBONES or not 0 < frozen_levels < 5 or freeze_backbone):
            raise OptionError(
                f"model.frozen_levels={frozen_levels}: takes 1-4 levels of a backbone in {PYRAMID_BACKBONES} "
                f"(got backbone {backbone!r}{', freeze_backbone' if freeze_backbone else ''}); "
                "freeze_backbone freezes all five"
            )
        if adapter_levels and (backbone not in PYRAMID_BACKBONES or frozen_levels):
            raise OptionError(
                f"model.adapter_levels={adapter_levels}: takes a backbone in {PYRAMID_BACKBONES} without frozen_levels "
                f"(got backbone {backbone!r}, frozen_levels {frozen_levels})"
            )
        self.tower_adapters = (
            TowerAdapters(self.backbone, adapter_levels, adapter_every_block, adapter_dim, not freeze_backbone)
            if adapter_levels else None
        )
        # levels share the backbone's layers; a plain list, so no parameter is registered (or saved) twice
        self._levels: list[nn.Module] = [m for m, _ in self.backbone.levels()] if frozen_levels else []
        self.frozen_levels = frozen_levels
        for level in self._levels[:frozen_levels]:
            level.requires_grad_(False)
            level.eval()

    def train(self, mode: bool = True) -> Baseline:
        """Switch modes; a frozen backbone stays in eval mode (its BatchNorm statistics are the start's)."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        for level in self._levels[: self.frozen_levels]:
            level.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, C)``."""
        if self.tower_adapters is not None:
            return self.head(self.tower_adapters(images).mean((2, 3)))
        if self.freeze_backbone:
            with torch.no_grad():
                features = self.backbone(images)
            return self.head(features)
        if self.frozen_levels:
            x = images
            with torch.no_grad():
                for level in self._levels[: self.frozen_levels]:
                    x = level(x)
            for level in self._levels[self.frozen_levels :]:
                x = level(x)
            return self.head(x.mean((2, 3)))
        return self.head(self.backbone(images))
