"""Test-only callbacks and the tiny CLI runs the tests share."""

import json

import lightning as L

from fer_zoo.cli import main


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


TINY = [
    "--data.num_train",
    "64",
    "--data.num_val",
    "32",
    "--data.num_test",
    "32",
    "--data.image_size",
    "32",
    "--data.synth_size",
    "32",
    "--data.batch_size",
    "16",
    "--data.num_workers",
    "0",
    "--trainer.accelerator",
    "cpu",
]
CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def baseline(subcommand, *args, data="synthetic"):
    """Argument list of a baseline run on the tiny synthetic set (or ``data``)."""
    tiny = TINY if data == "synthetic" else ["--trainer.accelerator", "cpu"]
    return [subcommand, "--model", "baseline", "--data", data, *tiny, *args]


def best_checkpoint(run_dir):
    return json.loads((run_dir / "fit_report.json").read_text())["best_model_path"]


METHOD_ARGS = {
    "e2n": ["--model.clip_arch", "FERZoo-Tiny"],
    "mpa": ["--model.clip_arch", "FERZoo-Tiny"],
    "mpa-face": ["--model.weights", "null", "--model.n_ctx", "2"],
    "clip-zeroshot": ["--model.clip_arch", "FERZoo-Tiny"],
    "clip-linear": ["--model.clip_arch", "FERZoo-Tiny"],
    "lanet": ["--model.queue_size", "64", "--data.sampler", "progressive"],
    "lacovl": [
        "--model.pyramid",
        "resnet18",
        "--model.dim",
        "32",
        "--model.heads",
        "2",
        "--model.clip_arch",
        "FERZoo-Tiny",
        "--model.landmark_input",
        "32",
        "--data.positive_pairs",
        "true",
    ],
}


def fit_two_steps(args, run_dir):
    """One epoch of two training batches, then validation, into ``run_dir``."""
    main(["fit", *args, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--run_dir", str(run_dir)])
