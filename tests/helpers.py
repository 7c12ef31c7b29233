"""Test-only callbacks."""

import lightning as L


class InterruptAfterEpoch(L.Callback):
    """Simulate Ctrl-C once training epoch ``epoch`` has finished (and its checkpoint was written)."""

    def __init__(self, epoch: int = 0) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch + 1:
            raise KeyboardInterrupt


class InterruptMidEpoch(L.Callback):
    """Simulate Ctrl-C before batch ``batch`` of epoch ``epoch``, after earlier steps were logged."""

    def __init__(self, epoch: int = 1, batch: int = 2) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise KeyboardInterrupt


class SlowSteps(L.Callback):
    """Sleep after every training step, so that a test can kill the process mid-epoch."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        import time

        time.sleep(self.seconds)


class PoisonWeightsAtStep(L.Callback):
    """Set every weight of the model's head to NaN before training step ``step`` (a diverging run)."""

    def __init__(self, step: int = 5) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        import torch

        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.head.parameters():
                    p.fill_(float("nan"))


class RecordRank(L.Callback):
    """Write ``rank<global rank>.json`` into ``out``: node rank, world size, the training sample ids this
    rank saw, and a checksum of its final weights (multi-node tests)."""

    def __init__(self, out: str) -> None:
        self.out, self.seen = out, []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.seen += [int(i) for i in batch["index"]]

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import json
        from pathlib import Path

        weights = [p.detach().double() for p in pl_module.parameters()]
        buffers = {n: b.detach().double() for n, b in pl_module.named_buffers() if b.numel() and "metric" not in n}
        Path(self.out).mkdir(parents=True, exist_ok=True)
        (Path(self.out) / f"rank{trainer.global_rank}.json").write_text(json.dumps({
            "node_rank": trainer.node_rank, "world_size": trainer.world_size, "seen": self.seen,
            "checksum": [float(sum(w.sum() for w in weights)), float(sum(w.pow(2).sum() for w in weights))],
            # state kept in buffers (LA-Net's MoCo queues and LDE bank) must agree across ranks too
            "buffers": {n: [float(b.sum()), float(b.pow(2).sum())] for n, b in buffers.items()},
        }))
