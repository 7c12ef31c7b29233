"""A CSV logger that keeps the metrics of the run it resumes."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    """Lightning's writer deletes an existing ``metrics.csv``; this one appends to it."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as handle:
                # known columns, so a later header rewrite keeps the old rows' fields
                self.metrics_keys = sorted(next(csv.reader(handle), []))


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` writing straight into ``save_dir``; with ``resume=True`` earlier rows are kept.

    Lightning removes the previous ``metrics.csv`` of a non-empty log folder, so a run resumed
    from its ``last.ckpt`` would lose the curve of its first epochs. Rows logged after that
    checkpoint and before the interruption are dropped when training restarts
    (:class:`TrimResumedLog`), so each step appears once.
    """

    def __init__(self, save_dir: str, resume: bool = False) -> None:
        """Log to ``save_dir/metrics.csv``; ``resume`` appends to an existing file."""
        super().__init__(save_dir=save_dir, name="", version="")
        self.resume = resume

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer (appending when resuming)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            writer = _AppendingWriter if self.resume else ExperimentWriter
            self._experiment = writer(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def trim_from(self, step: int) -> None:
        """Drop the rows of a resumed run logged at ``step`` or later (they will be logged again)."""
        path = Path(self.log_dir) / "metrics.csv"
        if not self.resume or not path.is_file():
            return
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            header, rows = reader.fieldnames or [], list(reader)
        kept = [r for r in rows if not r.get("step") or int(float(r["step"])) < step]
        if len(kept) < len(rows):
            with open(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=header)
                writer.writeheader()
                writer.writerows(kept)


class TrimResumedLog(L.Callback):
    """When a fit resumes, drop the CSV rows logged after the checkpoint it resumes from."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Trim every :class:`RunCSVLogger` to the restored global step."""
        for logger in trainer.loggers:
            if isinstance(logger, RunCSVLogger):
                logger.trim_from(trainer.global_step)
