"""Faults a user meets for real: a job killed with SIGKILL, a diverging loss, a half-written checkpoint."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fer_zoo.cli import main
from tests.conftest import REPO
from tests.helpers import TINY

FIT = [sys.executable, "-m", "fer_zoo", "fit", "--model", "baseline", "--data", "synthetic", *TINY,
       "--trainer.max_epochs", "3", "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "2",
       "--wandb", "disabled"]


def _steps(run_dir):
    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return [int(r["step"]) for r in rows if r.get("train/loss")], [float(r["val/acc"]) for r in rows if r.get("val/acc")]


@pytest.mark.slow  # make test-full (2.5 min at one thread); the default run resumes in tests/test_checkpoints.py
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*FIT, "--run_dir", str(tmp_path / "ref")], check=True, env=env, cwd=REPO, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*FIT, "--trainer.callbacks+=benchmarks.faults.SlowSteps", "--run_dir", str(killed)],
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
    assert not list((killed / "checkpoints").glob(".*.tmp"))


def test_nonfinite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    args = ["fit", "--model", "baseline", "--data", "synthetic", *TINY, "--trainer.max_epochs", "3",
            "--checkpoint_every_n_steps", "2", "--trainer.callbacks+=benchmarks.faults.PoisonWeightsAtStep",
            "--run_dir", str(tmp_path)]
    with pytest.raises(FloatingPointError, match="non-finite training loss at step 5 .*loss=nan"):
        main(args)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "fit_report.json").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ddp
@pytest.mark.slow  # make test-full; the default run keeps DDP through the two-device and killed-launcher tests
@pytest.mark.parametrize("model", ["baseline", "lanet"])
def test_two_nodes_on_one_machine_see_disjoint_data_and_end_identical(model, tmp_path):
    """``--trainer.num_nodes 2``: two processes given node ranks 0 and 1, a localhost master, gloo on CPU
    (what SLURM or torchrun set up across machines). For LA-Net the all-gathered MoCo queues and LDE target
    bank (buffers) must also end identical on both nodes."""
    port = _free_port()
    # (the default sampler: a class-balanced one repeats minority images by design, so draws are not disjoint)
    extra = ["--model.queue_size", "64", "--data.label_noise", "0.2"] if model == "lanet" else []
    cmd = [sys.executable, "-m", "fer_zoo", "fit", "--model", model, "--data", "synthetic", *TINY, *extra,
           "--trainer.max_epochs", "2", "--trainer.num_nodes", "2", "--trainer.devices", "1",
           "--trainer.strategy", "ddp", "--wandb", "disabled", "--run_dir", str(tmp_path / "run"),
           "--trainer.callbacks+=tests.helpers.RecordRank", f"--trainer.callbacks.init_args.out={tmp_path / 'ranks'}"]
    procs = []
    for node in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "NODE_RANK": str(node), "WORLD_SIZE": "2", "LOCAL_RANK": "0", "FER_ZOO_RUN_STAMP": "twonodes"}
        procs.append(subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    ranks = [json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["node_rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    for epoch in range(2):  # 64 training images, batch 16: 2 steps per rank per epoch
        a = set(ranks[0]["seen"][32 * epoch : 32 * (epoch + 1)])
        b = set(ranks[1]["seen"][32 * epoch : 32 * (epoch + 1)])
        assert len(a) == len(b) == 32 and not a & b and len(a | b) == 64
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-9)
    assert ranks[0]["buffers"].keys() == ranks[1]["buffers"].keys()
    for name, value in ranks[0]["buffers"].items():
        assert value == pytest.approx(ranks[1]["buffers"][name], rel=1e-9), name
    if model == "lanet":
        assert {"queue_exp", "queue_lm", "bank"} <= ranks[0]["buffers"].keys()
    assert json.loads((tmp_path / "run" / "fit_report.json").read_text())["world_size"] == 2


def test_unwritable_run_folder_is_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the run folder should go")
    with pytest.raises(SystemExit, match="cannot write the run folder .*blocker/run"):
        main(["fit", "--model", "baseline", "--data", "synthetic", *TINY, "--run_dir", str(blocker / "run")])


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """A write that fails part-way (ENOSPC on the 5th checkpoint) is one line; last.ckpt stays the step-4 one."""
    import errno

    from fer_zoo import checkpoints as checkpoint_io

    real_write, calls = checkpoint_io.write_file, []

    def write_until_the_disk_fills(path, data):
        calls.append(path)
        if len(calls) == 5:
            path.write_bytes(bytes(data)[: len(data) // 2])  # half of it reaches the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(checkpoint_io, "write_file", write_until_the_disk_fills)
    args = ["fit", "--model", "baseline", "--data", "synthetic", *TINY, "--trainer.max_epochs", "3",
            "--checkpoint_every_n_steps", "2", "--trainer.log_every_n_steps", "1", "--run_dir", str(tmp_path)]
    # Saves: step 2, step 4 (step checkpoints), epoch 0's best + last (step 4), then step 6 fails.
    with pytest.raises(SystemExit, match=r"cannot write checkpoint .*last.ckpt \(disk full\).*previous last.ckpt "
                                         r"is kept.*resume with --ckpt_path") as failure:
        main(args)
    assert "\n" not in str(failure.value)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best-epoch00-acc" + p.name.split("acc")[1]
                                                             for p in checkpoints.glob("best-*")] + ["last.ckpt"]
    last = torch.load(checkpoints / "last.ckpt", weights_only=True, map_location="cpu")
    assert last["global_step"] == 4  # complete, loadable, and the newest good state
    monkeypatch.setattr(checkpoint_io, "write_file", real_write)
    main([*args, "--ckpt_path", str(checkpoints / "last.ckpt")])  # space freed: the same command resumes
    steps, _ = _steps(tmp_path)
    assert len(steps) == len(set(steps)) == 12 and json.loads((tmp_path / "fit_report.json").read_text())["epochs"] == 3


def test_a_checkpoint_cannot_run_code_when_a_fit_resumes_from_it(tmp_path):
    import pickle

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # unpickling it would create the marker file

    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps({"state_dict": {"w": Payload()}}))
    for sub in (["fit"], ["test", "--model", "baseline"], ["test"]):
        with pytest.raises(SystemExit, match=r"--ckpt_path .*evil.ckpt: not a readable checkpoint \(UnpicklingError"):
            main([*sub, "--data", "synthetic", *TINY, "--ckpt_path", str(evil), "--run_dir", str(tmp_path / "run")])
    assert not marker.exists()
    # Lightning's own load (a resume that passed the check) is weights_only too: a packaged default.
    import yaml

    defaults = yaml.safe_load((REPO / "fer_zoo" / "configs" / "trainer" / "default.yaml").read_text())
    assert defaults["weights_only"] is True


def test_disk_full_message_finds_the_checkpoint_error_in_the_chain_and_reraises_others():
    import errno

    from fer_zoo.checkpoints import CheckpointWriteError, disk_full_message

    first = CheckpointWriteError(errno.ENOSPC, "cannot write checkpoint /r/last.ckpt (disk full): ...")
    try:
        try:
            raise first
        except OSError:  # Lightning's error handling then fails to write its log too
            raise OSError(errno.ENOSPC, "No space left on device", "/r/metrics.csv") from None
    except OSError as second:
        second.__context__ = first
        assert disk_full_message(second, "fit") == "fer-zoo fit: cannot write checkpoint /r/last.ckpt (disk full): ..."
    plain = OSError(errno.ENOSPC, "No space left on device", "/r/metrics.csv")
    assert disk_full_message(plain, "fit").startswith("fer-zoo fit: cannot write /r/metrics.csv (No space left")
    with pytest.raises(FileNotFoundError):
        disk_full_message(FileNotFoundError(errno.ENOENT, "No such file", "/x"), "fit")


def test_a_checkpoint_of_another_model_is_one_line_not_a_silent_swap(tmp_path):
    """Lightning's CLI builds the checkpoint's model whatever --model says; the zoo refuses the mismatch instead."""
    main(["fit", "--model", "baseline", "--data", "synthetic", *TINY, "--trainer.max_epochs", "1",
          "--run_dir", str(tmp_path / "fit")])
    ckpt = str(tmp_path / "fit" / "checkpoints" / "last.ckpt")
    for sub in ("test", "fit"):
        with pytest.raises(SystemExit, match=r"last.ckpt holds a Baseline checkpoint, but the model asked for is E2N"):
            main([sub, "--model", "e2n", "--data", "synthetic", *TINY, "--ckpt_path", ckpt,
                  "--run_dir", str(tmp_path / sub)])
    assert not (tmp_path / "test").exists()
    main(["test", "--data", "synthetic", *TINY, "--ckpt_path", ckpt, "--run_dir", str(tmp_path / "own")])
    assert json.loads((tmp_path / "own" / "test_report.json").read_text())["model"] == "baseline"


def _children(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.ddp
def test_a_ddp_rank_whose_launcher_is_killed_ends_instead_of_hanging(tmp_path):
    """Rank 0 (the launcher) killed with SIGKILL, as the OOM killer does: rank 1 must not stay blocked."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    cmd = [*FIT, "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
           "--trainer.callbacks+=benchmarks.faults.SlowSteps", "--run_dir", str(tmp_path / "run")]
    launcher = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ranks, deadline = [], time.time() + 300
    while not ranks and time.time() < deadline and launcher.poll() is None:
        time.sleep(0.5)
        ranks = [p for p in _children(launcher.pid) if b"fer_zoo" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert ranks, "rank 1 never started"
    time.sleep(15)  # both ranks inside the training loop (process group up, first steps done)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.time() + 60
    while time.time() < deadline and Path(f"/proc/{ranks[0]}").exists():
        time.sleep(0.5)
        try:  # a reparented zombie counts as ended
            if Path(f"/proc/{ranks[0]}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except OSError:
            break
    alive = Path(f"/proc/{ranks[0]}").exists() and "Z" not in Path(f"/proc/{ranks[0]}/stat").read_text().split()[2]
    if alive:
        os.kill(ranks[0], signal.SIGKILL)
    assert not alive, "rank 1 kept running after its launcher was killed"
