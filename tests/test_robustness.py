"""Faults a user meets for real: a job killed with SIGKILL, a diverging loss, a half-written checkpoint."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from fer_zoo.cli import main
from tests.conftest import REPO
from tests.test_cli import TINY

FIT = [sys.executable, "-m", "fer_zoo", "fit", "--model", "baseline", "--data", "synthetic", *TINY,
       "--trainer.max_epochs", "3", "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "2",
       "--wandb", "disabled"]


def _steps(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return [int(r["step"]) for r in rows if r.get("train/loss")], [float(r["val/acc"]) for r in rows if r.get("val/acc")]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*FIT, "--run_dir", str(tmp_path / "ref")], check=True, env=env, cwd=REPO, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*FIT, "--trainer.callbacks+=tests.helpers.SlowSteps", "--run_dir", str(killed)],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last, step, deadline = killed / "checkpoints" / "last.ckpt", -1, time.time() + 300
    while step < 6 and time.time() < deadline:  # 4 steps per epoch: step 6 is mid-epoch 1
        time.sleep(0.1)
        if last.exists():
            try:
                step = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
            except Exception:  # caught between the temporary file's rename and the load: retry
                continue
    os.kill(proc.pid, signal.SIGKILL)  # a real kill -9, as a scheduler does
    proc.wait()
    assert step >= 6 and not (killed / "fit_report.json").exists()
    subprocess.run([*FIT, "--ckpt_path", str(last), "--run_dir", str(killed)], check=True, env=env, cwd=REPO,
                   capture_output=True)
    ref, resumed = json.loads((tmp_path / "ref" / "fit_report.json").read_text()), json.loads(
        (killed / "fit_report.json").read_text())
    assert resumed["global_step"] == ref["global_step"] == 12 and resumed["epochs"] == 3
    steps, val = _steps(killed)
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == 12  # each step logged once
    _, ref_val = _steps(tmp_path / "ref")
    assert len(val) == 3 and abs(val[-1] - ref_val[-1]) <= 0.2  # within seed noise on 32 validation images
    assert not list((killed / "checkpoints").glob("*.tmp"))


def test_nonfinite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    args = ["fit", "--model", "baseline", "--data", "synthetic", *TINY, "--trainer.max_epochs", "3",
            "--checkpoint_every_n_steps", "2", "--trainer.callbacks+=tests.helpers.PoisonWeightsAtStep",
            "--run_dir", str(tmp_path)]
    with pytest.raises(FloatingPointError, match="non-finite training loss at step 5 .*loss=nan"):
        main(args)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "fit_report.json").exists()
