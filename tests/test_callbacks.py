"""fer_zoo.callbacks: reports, the resumed CSV log, W&B tables, the per-epoch line."""

import csv
import json
import time
from types import SimpleNamespace

import pytest
import torch

from fer_zoo.cli import main
from tests.helpers import baseline, best_checkpoint


def test_best_test_epoch_is_reported(fitted):
    report = json.loads((fitted / "fit_report.json").read_text())
    with open(fitted / "metrics.csv") as handle:
        per_epoch = {int(r["epoch"]): float(r["test_each_epoch/acc"]) for r in csv.DictReader(handle) if r.get("test_each_epoch/acc")}
    assert set(per_epoch) == {0, 1} and all(0.0 <= a <= 1.0 for a in per_epoch.values())
    best = max(per_epoch, key=per_epoch.get)
    assert report["best_test_epoch"] == {"epoch": best, "acc": pytest.approx(per_epoch[best])}
    # (Checked by hand: the epoch-1 figure equals `fer-zoo test` of last.ckpt in isolation; in one full-suite run
    # they differed, 0.281 against 0.188 on 32 images, see the issue note: not asserted until understood.)


def test_resumed_fit_logs_each_step_once(tmp_path):
    args = baseline("fit", "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1")
    try:
        main([*args, "--trainer.callbacks+=tests.helpers.InterruptMidEpoch", "--run_dir", str(tmp_path)])
    except SystemExit:
        pass
    with open(tmp_path / "metrics.csv") as handle:
        before = [int(r["step"]) for r in csv.DictReader(handle) if r.get("train/loss")]
    assert max(before) >= 4  # steps of epoch 1 were logged after the epoch-0 checkpoint (step 4)
    main([*args, "--ckpt_path", str(tmp_path / "checkpoints" / "last.ckpt"), "--run_dir", str(tmp_path)])
    with open(tmp_path / "metrics.csv") as handle:
        steps = [int(r["step"]) for r in csv.DictReader(handle) if r.get("train/loss")]
    assert sorted(steps) == steps and len(steps) == len(set(steps)) == 8  # 2 epochs x 4 steps, each once


def test_wandb_offline_run_logs_test_tables(fitted, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    main(baseline("test", "--ckpt_path", best_checkpoint(fitted), "--run_dir", str(tmp_path)))
    import wandb

    wandb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # Logged tables are written by the client itself (the binary run log is flushed asynchronously).
    tables = sorted(p.name for p in (runs[0] / "files" / "media" / "table" / "test").glob("*.table.json"))
    assert any(t.startswith("per_class") for t in tables) and any(t.startswith("confusion_matrix") for t in tables)
    per_class = json.loads(next((runs[0] / "files" / "media" / "table" / "test").glob("per_class*")).read_text())
    assert per_class["columns"] == ["class", "accuracy", "support"] and len(per_class["data"]) == 7


def test_epoch_line_reports_loss_validation_speed_and_eta():
    from fer_zoo.callbacks import epoch_line

    class Throughput:
        images_per_second = 64.25

    trainer = SimpleNamespace(current_epoch=1, max_epochs=10,
                              callback_metrics={"train/loss": torch.tensor(0.5), "val/acc": torch.tensor(0.8125)})
    line = epoch_line(trainer, time.perf_counter() - 120.0, 0, Throughput())
    # 2 epochs in 2 minutes: 8 left take 8 minutes
    assert line.startswith("epoch 2/10  train/loss 0.5000  val/acc 0.8125  64.2 img/s  elapsed 2.0 min  ETA 8.0 min")


