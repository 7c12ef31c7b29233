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
