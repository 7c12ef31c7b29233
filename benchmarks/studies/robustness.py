"""Faults tried for real on the tiny synthetic set; writes ``benchmarks/results/robustness/README.md``.

Each scenario runs the real ``fer-zoo`` command in its own process and records what the user sees
(exit status and the last line of output) and what was lost. The matching tests are named in the
table (``tests/test_robustness.py``, ``tests/test_cli.py``, ``tests/datasets/``).

Usage::

    python -m benchmarks.studies.robustness [--work runs/robustness]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.paths import RESULTS, ROOT

TINY = ["--data.num_train", "64", "--data.num_val", "32", "--data.num_test", "32", "--data.image_size", "32",
        "--data.synth_size", "32", "--data.batch_size", "16", "--data.num_workers", "0", "--trainer.accelerator",
        "cpu", "--wandb", "disabled"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # every command on one thread, as the tests run them
FIT = [sys.executable, "-m", "fer_zoo", "fit", "--model", "baseline", "--data", "synthetic", *TINY,
       "--trainer.max_epochs", "3", "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "2"]


def run(cmd: list[str], **kw) -> tuple[int, str]:
    """Exit status and the last meaningful output line of ``cmd``."""
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=ENV,
                          **kw)
    text = done.stderr + done.stdout
    return done.returncode, last_line(text) + (" [PWNED printed: code ran]" if "PWNED" in text else "")


def last_line(text: str) -> str:
    """The last error line of a command's output (or its last line), shortened for a table cell."""
    lines = [s for s in text.splitlines() if s.strip() and "Warning" not in s and not s.startswith(("  ", "wandb", "💡"))]
    errors = [s for s in lines if "Error" in s or s.startswith("fer-zoo ")]
    return (errors or lines or [""])[-1].replace("|", "/")[:300]


def main(argv: list[str] | None = None) -> None:
    """Run every scenario; tabulate."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/robustness")
    p.add_argument("--out", default=str(RESULTS / "robustness" / "README.md"))
    a = p.parse_args(argv)
    work = (ROOT / a.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = []

    # 1. SIGKILL mid-epoch, then the same command with --ckpt_path
    killed = work / "killed"
    proc = subprocess.Popen([*FIT, "--trainer.callbacks+=benchmarks.faults.SlowSteps", "--run_dir", str(killed)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV)
    last, step = killed / "checkpoints" / "last.ckpt", -1
    while step < 6:
        time.sleep(0.1)
        try:
            step = torch.load(last, weights_only=True, map_location="cpu")["global_step"] if last.exists() else -1
        except Exception:
            continue
    with open(killed / "metrics.csv") as handle:
        logged = max(int(line.split(",")[list(next(open(killed / "metrics.csv")).strip().split(",")).index("step")])
                     for line in list(handle)[1:] if line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    code, line = run([*FIT, "--ckpt_path", str(last), "--run_dir", str(killed)])
    report = json.loads((killed / "fit_report.json").read_text())
    rows.append(("`kill -9` mid-epoch 1 (step ~7 of 12), then the same command + `--ckpt_path .../last.ckpt`",
                 f"exit {code}; the fit completes ({report['global_step']} steps, {report['epochs']} epochs); "
                 "metrics.csv has each step once",
                 f"the steps after the last step checkpoint (step {step}; last logged step before the kill "
                 f"{logged}): at most `--checkpoint_every_n_steps`", "test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run"))

    # 2. truncated checkpoint
    cut = work / "cut.ckpt"
    cut.write_bytes(last.read_bytes()[:4096])
    code, line = run([sys.executable, "-m", "fer_zoo", "test", "--data", "synthetic", *TINY, "--ckpt_path", str(cut)])
    rows.append(("truncated checkpoint (first 4 KiB) given to `fer-zoo test`", f"exit {code}: `{line}`", "nothing",
                 "test_test_with_a_truncated_checkpoint_is_one_named_line"))
    code, line = run([sys.executable, "-m", "fer_zoo", "export", "--ckpt_path", str(cut)])
    rows.append(("the same file given to `fer-zoo export`", f"exit {code}: `{line}`", "nothing",
                 "test_unreadable_checkpoints_are_named"))

    # 3. a file that is not a checkpoint at all / a pickle that would run code
    evil = work / "evil.ckpt"
    import pickle

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo PWNED",))

    evil.write_bytes(pickle.dumps({"state_dict": Boom()}))
    code, line = run([sys.executable, "-m", "fer_zoo", "test", "--data", "synthetic", *TINY, "--ckpt_path", str(evil)])
    rows.append(("a pickle that runs a shell command when unpickled, given as `--ckpt_path`",
                 f"exit {code}: `{line}`", "nothing (read with `weights_only=True`: the command never runs)",
                 "test_a_checkpoint_cannot_run_code_when_a_fit_resumes_from_it"))
    code, line = run([*FIT, "--ckpt_path", str(evil), "--run_dir", str(work / "evil-fit")])
    rows.append(("the same pickle as `fer-zoo fit --ckpt_path` (a resume)", f"exit {code}: `{line}`",
                 "nothing (checked `weights_only` before any work; Lightning's resume also loads with "
                 "`weights_only: true`, a packaged default)", "test_a_checkpoint_cannot_run_code_when_a_fit_resumes_from_it"))

    # 4. wrong --ckpt_path
    code, line = run([sys.executable, "-m", "fer_zoo", "test", "--model", "baseline", "--data", "synthetic", *TINY,
                      "--ckpt_path", str(work / "nope.ckpt")])
    rows.append(("`--ckpt_path` that does not exist", f"exit {code}: `{line}`", "nothing", "–"))
    code, line = run([sys.executable, "-m", "fer_zoo", "test", "--model", "e2n", "--data", "synthetic", *TINY,
                      "--ckpt_path", str(killed / "checkpoints" / "last.ckpt"), "--run_dir", str(work / "other")])
    rows.append(("checkpoint of another model (`--model e2n` with a baseline checkpoint; Lightning's CLI would "
                 "silently build the checkpoint's model)", f"exit {code}: `{line}`", "nothing",
                 "test_a_checkpoint_of_another_model_is_one_line_not_a_silent_swap"))

    # 5. checkpoint of a 7-class model tested on 8-class FERPlus-layout data: cross-dataset evaluation
    rows.append(("checkpoint with another class count (7-class synthetic model on 8-class FERPlus)",
                 "evaluated on the shared classes; the report names the classes left out (`cross_dataset`)",
                 "nothing", "test_cross_dataset_test_on_ferplus_and_a_labelled_folder"))

    # 6. NaN loss
    code, line = run([*FIT, "--trainer.callbacks+=benchmarks.faults.PoisonWeightsAtStep", "--run_dir", str(work / "nan")])
    good = torch.load(work / "nan" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    finite = all(torch.isfinite(v).all() for v in good["state_dict"].values() if v.is_floating_point())
    rows.append(("loss becomes NaN at step 5 (head weights poisoned)", f"exit {code}: `{line}`",
                 f"step 5 onwards; `last.ckpt` is step {good['global_step']} with finite weights: {finite}",
                 "test_nonfinite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint"))

    # 7. run folder that cannot be created (a file is in the way; chmod is not enforced for root)
    blocker = work / "blocker"
    blocker.write_text("a file where the run folder should go")
    code, line = run([*FIT, "--trainer.max_epochs", "1", "--run_dir", str(blocker / "run")])
    rows.append(("run folder cannot be created (a file is in its path)", f"exit {code}: `{line}`",
                 "nothing (fails before training)", "test_unwritable_run_folder_is_one_line_before_any_work"))

    # 8. a real full disk mid-fit: the run folder on a 300 MB tmpfs (each checkpoint here is ~128 MB), mounted in a
    # private mount namespace (needs root); the run folder is copied out before the namespace ends.
    full = work / "full"
    full.mkdir()
    inner = (f"mount -t tmpfs -o size=300m tmpfs {full} || exit 99; cd {ROOT}; "
             f"{shlex.join([*FIT, '--run_dir', str(full / 'run')])} > {work / 'full.log'} 2>&1; "
             f"echo $? > {work / 'full.rc'}; cp -a {full / 'run'} {work / 'full-run'}")
    done = subprocess.run(["unshare", "-m", "sh", "-c", inner], env=ENV,
                          capture_output=True, text=True)
    if done.returncode == 0 and (work / "full.rc").exists():
        code, line = int((work / "full.rc").read_text()), last_line((work / "full.log").read_text())
        kept = work / "full-run" / "checkpoints"
        last = torch.load(kept / "last.ckpt", weights_only=True, map_location="cpu")
        files = ", ".join(sorted(f.name for f in kept.iterdir()))
        resumed, _ = run([*FIT, "--ckpt_path", str(kept / "last.ckpt"), "--run_dir", str(work / "full-run")])
        report = json.loads((work / "full-run" / "fit_report.json").read_text())
        rows.append(("disk full mid-fit (a real one: the run folder on a 300 MB tmpfs; checkpoints are ~128 MB), then "
                     "the same command with `--ckpt_path` and the run folder moved to a disk with space",
                     f"exit {code}: `{line}`; the resume exits {resumed} and completes ({report['global_step']} steps, "
                     f"{report['epochs']} epochs)",
                     f"the steps since `last.ckpt` (step {last['global_step']}, complete and loadable; the folder "
                     f"holds {files}: {'a partial temporary file is left' if '.tmp' in files else 'no partial file'})",
                     "test_disk_full_while_checkpointing_keeps_the_previous_checkpoint"))
    else:
        rows.append(("disk full mid-fit", f"not run here (a tmpfs needs root: `{done.stderr.strip()[:120]}`)", "–",
                     "test_disk_full_while_checkpointing_keeps_the_previous_checkpoint"))

    # 9. corrupt packed cache (truncated), corrupt landmark cache
    rows.append(("packed image cache truncated (e.g. a full disk during a copy)",
                 "a warning naming the file, then the cache is rebuilt from the images", "the rebuild time",
                 "test_truncated_or_unreadable_cache_is_rebuilt_not_used"))
    rows.append(("landmark cache truncated", "`<file>: corrupt landmark cache (...); delete it and run `fer-zoo "
                 "landmarks` again`", "nothing; the rebuild resumes from finished chunks",
                 "test_corrupt_landmark_cache_is_a_named_error, test_build_detects_faces_caches_and_resumes"))
    rows.append(("`fer-zoo landmarks` interrupted", "the next run resumes from the finished 500-row chunks (each "
                 "written atomically)", "the unfinished chunk", "test_build_detects_faces_caches_and_resumes"))

    lines = ["# Robustness: faults tried for real", "", "```", f"python -m benchmarks.studies.robustness "
             f"{' '.join(sys.argv[1:] if argv is None else argv)}", "```", "",
             "Rows 1-7 and 9-11 were run by this script on the tiny synthetic set (each the real `fer-zoo` command in "
             "its own process); the other rows are covered by the named tests.", "",
             "| fault | what the user sees | what is lost | test |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | `{d}` |" if d != "–" else f"| {a} | {b} | {c} | – |" for a, b, c, d in rows]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
