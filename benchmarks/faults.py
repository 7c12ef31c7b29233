"""Fault-injection callbacks for ``benchmarks.studies.robustness`` and the robustness tests (slow steps, poisoned weights).

Passed on the command line: ``--trainer.callbacks+=benchmarks.faults.SlowSteps``.
"""

from __future__ import annotations

import time

import lightning as L
import torch


class SlowSteps(L.Callback):
    """Sleep after every training step, so that a test can kill the process mid-epoch."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        time.sleep(self.seconds)


class PoisonWeightsAtStep(L.Callback):
    """Set every weight of the model's head to NaN before training step ``step`` (a diverging run)."""

    def __init__(self, step: int = 5) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.head.parameters():
                    p.fill_(float("nan"))
