"""Pretraining of LaCoVL's landmark feature extractor on cached landmarks (``fer-zoo pretrain-landmarks``).

The paper's frozen landmark extractor is a pretrained landmark network (MobileFaceNet in POSTER++).
None can be had offline, so this trains the same kind of network (:class:`LandmarkNet`) to
regress the dataset's 68 landmarks (the MediaPipe cache for FERPlus/RAF-DB, the dataset's own
points for AffectNet and the synthetic set), from the training images. Only images with a
detected face count. The result is a state dict for ``--model.landmark_weights``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from fer_zoo.models.components.lacovl import LandmarkNet


class LandmarkPretrainer(L.LightningModule):
    """L1 regression of 68 normalised landmarks; validation reports the NME (inter-ocular)."""

    def __init__(self, input_size: int = 112, lr: float = 2e-3, weight_decay: float = 1e-4) -> None:
        """Build the network to train."""
        super().__init__()
        self.save_hyperparameters()
        self.net = LandmarkNet(input_size)
        self.nme_sum, self.nme_count = 0.0, 0

    def _targets(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        points = batch.get("landmarks")
        if points is None or points.shape[1] != 68:
            raise ValueError("pretraining needs 68 landmarks per image (--landmarks mediapipe or dataset)")
        valid = batch.get("landmark_found", torch.ones(len(points), dtype=torch.bool, device=points.device))
        return points / batch["image"].shape[-1], valid.float()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Masked L1 on normalised coordinates."""
        target, valid = self._targets(batch)
        per_sample = (self.net(batch["image"]) - target).abs().mean((1, 2))
        loss = (per_sample * valid).sum() / valid.sum().clamp_min(1.0)
        self.log("train/l1", loss, prog_bar=True, batch_size=len(target))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulate the NME over images with a detected face."""
        target, valid = self._targets(batch)
        pred = self.net(batch["image"])
        nme = inter_ocular_nme(pred, target)
        keep = valid > 0
        self.nme_sum += float(nme[keep].sum())
        self.nme_count += int(keep.sum())

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's NME."""
        nme = self.nme_sum / max(self.nme_count, 1)
        self.log("val/nme", nme, prog_bar=True)
        self.last_nme = nme
        self.nme_sum, self.nme_count = 0.0, 0

    def configure_optimizers(self) -> Any:
        """AdamW with a per-step cosine decay."""
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def mean_shape_nme(train: Any, val: Any) -> float:
    """NME (inter-ocular) of predicting the training set's mean shape for every validation image.

    The no-learning reference for :class:`LandmarkPretrainer`'s ``val/nme``: a network that is
    genuinely pretrained must beat it. Both datasets are :class:`~fer_zoo.datasets.base.FERDataset`
    with 68 landmarks in stored-image pixels; only images with a face count.
    """
    import numpy as np

    def normalised(data: Any) -> np.ndarray:
        height, width = data.images.shape[1:3]
        points = data.manifest.landmarks / np.array([width, height], dtype=np.float32)
        return points if data.landmark_found is None else points[data.landmark_found]

    target = torch.from_numpy(normalised(val))
    mean = torch.from_numpy(normalised(train).mean(0))
    return float(inter_ocular_nme(mean.expand_as(target), target).mean())


def inter_ocular_nme(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean point error over the outer-eye-corner distance (iBUG 36, 45): ``(B, 68, 2)`` -> ``(B,)``."""
    iod = (target[:, 36] - target[:, 45]).norm(dim=-1).clamp_min(1e-6)
    return (pred - target).norm(dim=-1).mean(1) / iod
