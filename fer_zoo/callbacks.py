"""Callbacks: training throughput, run reports (JSON/CSV, W&B tables), prediction CSVs, checkpoint writing."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_only

from fer_zoo.checkpoints import RUN_KEY


class ThroughputMonitor(L.Callback):
    """Training images per second (all ranks together), skipping each epoch's first batches."""

    def __init__(self, skip_batches: int = 3) -> None:
        """Skip ``skip_batches`` warm-up batches per epoch."""
        self.skip = skip_batches
        self.images = 0
        self.seconds = 0.0
        self._start = 0.0
        self._batch = 0

    @property
    def images_per_second(self) -> float | None:
        """Measured throughput so far (None before any timed batch)."""
        return self.images / self.seconds if self.seconds > 0 else None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Reset the warm-up counter."""
        self._batch = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Start the clock."""
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Stop the clock and count the batch (times the number of ranks)."""
        self._batch += 1
        if self._batch > self.skip:
            self.seconds += time.perf_counter() - self._start
            self.images += len(batch["label"]) * trainer.world_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log the running throughput."""
        if self.images_per_second:
            pl_module.log("train/img_per_s", self.images_per_second, rank_zero_only=True)


class EpochLine(L.Callback):
    """One progress line per epoch on stdout: loss, validation figures, img/s and ETA.

    Lightning's progress bar draws nothing useful without a terminal; the CLI adds this callback to a fit
    whose stdout is not a TTY (nohup, SLURM, CI logs).
    """

    def __init__(self, throughput: ThroughputMonitor | None = None) -> None:
        """Take img/s from ``throughput`` when given."""
        self.throughput = throughput
        self._fit_start = 0.0
        self._first_epoch = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the clock (a resumed fit counts from its first new epoch)."""
        self._fit_start = time.perf_counter()
        self._first_epoch = trainer.current_epoch

    @rank_zero_only
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Print the epoch's line."""
        print(epoch_line(trainer, self._fit_start, self._first_epoch, self.throughput), flush=True)


def epoch_line(
    trainer: L.Trainer, fit_start: float, first_epoch: int, throughput: ThroughputMonitor | None = None
) -> str:
    """``epoch 3/10  train/loss 0.8123  val/acc 0.8012  val/mca 0.5710  64.2 img/s  elapsed 21.5 min  ETA 50.2 min``."""
    epoch = trainer.current_epoch + 1
    total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
    parts = [f"epoch {epoch}/{total or '?'}"]
    metrics = trainer.callback_metrics
    for key in ("train/loss", "val/acc", "val/mca", "val/f1_macro"):
        if key in metrics:
            parts.append(f"{key} {float(metrics[key]):.4f}")
    if throughput is not None and throughput.images_per_second:
        parts.append(f"{throughput.images_per_second:.1f} img/s")
    elapsed = time.perf_counter() - fit_start
    parts.append(f"elapsed {elapsed / 60:.1f} min")
    done = epoch - first_epoch
    if total and done > 0:
        parts.append(f"ETA {elapsed / done * (total - epoch) / 60:.1f} min")
    return "  ".join(parts)


class TestEachEpoch(L.Callback):
    """Evaluate the test split after every validation, for the "best test epoch" figure only.

    Many FER papers report the best test accuracy over epochs. This callback records it so a
    run can be set beside them, labelled as such (``test_each_epoch/acc`` in the log,
    ``best_test_epoch`` in the fit report). It never selects checkpoints: selection stays on
    validation. The test set is run on global rank zero in full (no distributed sampler); the
    history is saved in checkpoints, so a resumed fit keeps it.
    """

    def __init__(self) -> None:
        """Start with an empty history."""
        self.history: list[tuple[int, float]] = []
        self._loader: Any = None

    def state_dict(self) -> dict[str, Any]:
        """The per-epoch test accuracies so far."""
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the history of a resumed fit."""
        self.history = [tuple(item) for item in state_dict.get("history", [])]

    @property
    def best(self) -> dict[str, float] | None:
        """``{"epoch", "acc"}`` of the best test accuracy so far (None before the first)."""
        if not self.history:
            return None
        epoch, acc = max(self.history, key=lambda item: item[1])
        return {"epoch": int(epoch), "acc": float(acc)}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Run the test split once per validation (not during the sanity check)."""
        if trainer.sanity_checking or trainer.state.fn != "fit" or trainer.datamodule is None:
            return
        acc = torch.zeros(1, device=pl_module.device)
        if trainer.is_global_zero:
            if self._loader is None:
                trainer.datamodule.setup("test")
                self._loader = trainer.datamodule.test_dataloader()
            correct = total = 0
            with torch.no_grad():
                for batch in self._loader:
                    logits = pl_module(batch["image"].to(pl_module.device))
                    correct += int((logits.argmax(1).cpu() == batch["label"]).sum())
                    total += len(batch["label"])
            acc += correct / max(total, 1)
        acc = trainer.strategy.broadcast(acc, src=0)
        self.history = [h for h in self.history if h[0] != trainer.current_epoch]
        self.history.append((trainer.current_epoch, float(acc)))
        pl_module.log("test_each_epoch/acc", float(acc), rank_zero_only=True)


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """Peak memory of this process: CUDA memory allocated by torch (on a GPU), and resident set size (MB)."""
    import resource

    out: dict[str, float | None] = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return out


class RunReport(L.Callback):
    """Write ``fit_report.json`` / ``<stage>_report.json`` (+ CSVs) into the run folder; log tables to W&B.

    The benchmark runner reads these files, so every number in its tables comes from a run.
    """

    def __init__(self, run_dir: str | Path, info: dict[str, Any] | None = None) -> None:
        """Report into ``run_dir``; ``info`` (dataset, model, seed...) is copied into each report."""
        self.run_dir = Path(run_dir)
        self.info = dict(info or {})

    def _write(self, name: str, payload: dict[str, Any]) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / name
        path.write_text(json.dumps({**self.info, **payload}, indent=1))
        return path

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Record the fit's seed in its checkpoints, so a later test reports the seed of the model it tests."""
        if self.info.get("subcommand") == "fit":
            checkpoint[RUN_KEY] = {"seed": self.info.get("seed")}

    @rank_zero_only
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Save the noisy training labels (with the clean ones) when the label-noise protocol is on."""
        table_fn = getattr(trainer.datamodule, "noisy_label_table", None) if trainer.datamodule else None
        table = table_fn() if table_fn else None
        if table is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "train_labels_noisy.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "noisy_label", "clean_label"])
            writer.writerows(table)

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record the best checkpoint, its validation metrics, throughput and size."""
        ckpt = trainer.checkpoint_callback
        throughput = next((c for c in trainer.callbacks if isinstance(c, ThroughputMonitor)), None)
        each_epoch = next((c for c in trainer.callbacks if isinstance(c, TestEachEpoch)), None)
        self._write(
            "fit_report.json",
            {
                "best_model_path": getattr(ckpt, "best_model_path", None) or None,
                "last_model_path": getattr(ckpt, "last_model_path", None) or None,
                "monitor": getattr(ckpt, "monitor", None),
                "best_score": float(ckpt.best_model_score)
                if getattr(ckpt, "best_model_score", None) is not None
                else None,
                "epochs": trainer.current_epoch,
                "global_step": trainer.global_step,
                "world_size": trainer.world_size,
                "train_img_per_s": throughput.images_per_second if throughput else None,
                **peak_memory(trainer.strategy.root_device),  # pl_module may be back on the CPU here (DDP teardown)
                "params": pl_module.num_parameters(),
                "trainable_params": pl_module.num_parameters(trainable_only=True),
                "last_val": getattr(pl_module, "results", {}).get("val"),
                # Reported beside papers that select on test; never used for selection here.
                "best_test_epoch": each_epoch.best if each_epoch else None,
            },
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the validation report when validating on its own (``fer-zoo validate``)."""
        if trainer.state.fn == "validate":
            self._stage_report(trainer, pl_module, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the test report, per-class CSV and confusion matrix; log them to W&B."""
        self._stage_report(trainer, pl_module, "test")

    @rank_zero_only
    def _stage_report(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        result = getattr(pl_module, "results", {}).get(stage)
        if result is None:
            return
        if trainer.world_size > 1:
            result = {
                **result,
                "warning": "computed under DDP: the distributed sampler may repeat samples; "
                "report test numbers from a single-device run",
            }
        self._write(
            f"{stage}_report.json",
            {"stage": stage, "world_size": trainer.world_size, "params": pl_module.num_parameters(), **result},
        )
        names = result["class_names"]
        with open(self.run_dir / f"{stage}_per_class.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", "accuracy", "support"])
            for n in names:
                acc = result["per_class_acc"][n]  # None: a model class the (cross-dataset) test set lacks
                writer.writerow([n, "" if acc is None else f"{acc:.4f}", result["support"][n]])
        with open(self.run_dir / f"{stage}_confusion_matrix.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["true\\pred", *names])
            for n, row in zip(names, result["confusion_matrix"]):
                writer.writerow([n, *row])
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                self._log_wandb(logger, pl_module, stage, result)

    @staticmethod
    def _log_wandb(logger: Any, pl_module: L.LightningModule, stage: str, result: dict[str, Any]) -> None:
        import wandb

        names = result["class_names"]
        rows = [[n, result["per_class_acc"][n], result["support"][n]] for n in names]
        logger.log_table(key=f"{stage}/per_class", columns=["class", "accuracy", "support"], data=rows)
        matrix = result["confusion_matrix"]
        y_true = [i for i, row in enumerate(matrix) for j, c in enumerate(row) for _ in range(int(c))]
        y_pred = [j for i, row in enumerate(matrix) for j, c in enumerate(row) for _ in range(int(c))]
        chart = wandb.plot.confusion_matrix(y_true=y_true, preds=y_pred, class_names=names, title=f"{stage} confusion")
        logger.experiment.log({f"{stage}/confusion_matrix": chart, "trainer/global_step": pl_module.global_step})


class PredictionCSVWriter(BasePredictionWriter):
    """Write one CSV row per predicted face: file, face index, box, class, confidence, all probabilities."""

    def __init__(self, output: str | Path) -> None:
        """Write to ``output``."""
        super().__init__(write_interval="epoch")
        self.output = Path(output)

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        """Gather the batches and write the CSV (rank zero); smooth video faces over frames when asked."""
        if trainer.global_rank != 0:
            return
        names = list(pl_module.class_names)
        alpha = float(getattr(trainer.datamodule, "temporal_smoothing", 0.0) or 0.0)
        rows = []
        for batch in predictions:
            probs = batch["probs"].float()
            n = len(probs)
            for i in range(n):
                rows.append({
                    "path": batch.get("path", [""] * n)[i],
                    "frame": int(batch["frame"][i]) if "frame" in batch else -1,
                    "time_s": float(batch["time_s"][i]) if "time_s" in batch else float("nan"),
                    "face": int(batch["face"][i]) if "face" in batch else 0,
                    "box": [int(v) for v in batch["box"][i]] if "box" in batch else [-1] * 4,
                    "found": bool(batch["face_found"][i]) if "face_found" in batch else True,
                    "probs": probs[i],
                })
        smoothed: dict[tuple[str, int], torch.Tensor] = {}
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with open(self.output, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "frame", "time_s", "face", "box_x", "box_y", "box_w", "box_h", "face_found",
                             "prediction", "confidence", *[f"p_{n}" for n in names]])
            for row in rows:
                probs = row["probs"]
                if alpha > 0 and row["frame"] >= 0:  # rows are in file and frame order
                    key = (row["path"], row["face"])
                    probs = alpha * smoothed[key] + (1 - alpha) * probs if key in smoothed else probs
                    smoothed[key] = probs
                k = int(probs.argmax())
                writer.writerow([
                    row["path"], row["frame"], "" if row["time_s"] != row["time_s"] else f"{row['time_s']:.3f}",
                    row["face"], *row["box"], row["found"], names[k], f"{float(probs[k]):.4f}",
                    *[f"{float(p):.4f}" for p in probs],
                ])
        print(f"predictions written to {self.output}")
