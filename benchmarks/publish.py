"""Publishing: a run's reports copied into a study folder, a script's Markdown report, the W&B benchmark run.

Only an explicit ``--results`` (or a script's ``--out``) writes into ``benchmarks/results/``; a user's run writes to
its work folder. Copies hold text only (reports, per-epoch CSV, config, commands); plots and HTML come from
``make report``.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import pandas as pd

from benchmarks.paths import ROOT

#: what a published run folder holds: source name in the fit/test folder -> published name
RUN_FILES = (
    ("fit", "metrics.csv", "fit_metrics.csv"),
    ("fit", "fit_report.json", "fit_report.json"),
    ("test", "test_report.json", "test_report.json"),
    ("test", "test_per_class.csv", "test_per_class.csv"),
    ("test", "test_confusion_matrix.csv", "test_confusion_matrix.csv"),
    ("fit", "lightning_config.yaml", "config.yaml"),
)


def finish_report(lines: list[str], module: str, argv: list[str], out: str | None) -> str:
    """Append ``Command: `python -m <module> <argv>``` to ``lines``, print the report and write it to ``out``."""
    text = "\n".join([*lines, "", f"Command: `python -m {module} {shlex.join(argv)}`", ""])
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text


def fer_zoo_cmd(*args: str) -> list[str]:
    """A ``python -m fer_zoo`` command line with this interpreter."""
    return [sys.executable, "-m", "fer_zoo", *args]


def portable(cmd: list[str]) -> str:
    """``cmd`` as a shell line a reader can paste: ``python`` for this interpreter, paths relative to the repo."""
    return shlex.join(cmd).replace(sys.executable, "python").replace(f"{ROOT}/", "")


def relative_checkpoint_paths(report: Path, run_dir: Path) -> None:
    """Rewrite a published report's checkpoint paths relative to its run folder (no machine's absolute paths)."""
    if not report.is_file():
        return
    data = json.loads(report.read_text())
    for key in ("best_model_path", "last_model_path"):
        value = data.get(key)
        if value and Path(value).is_absolute():
            try:
                data[key] = str(Path(value).relative_to(Path(run_dir).resolve()))
            except ValueError:
                data[key] = str(Path("checkpoints") / Path(value).name)
    report.write_text(json.dumps(data, indent=1))


def publish_run(out: Path, fit_dir: Path, test_dir: Path, cmds: list[list[str]]) -> None:
    """Copy a run's reports, per-epoch metrics, config and commands into ``out`` (``<results>/runs/<dataset>/
    <model>/s<seed>``), checkpoint paths made relative."""
    out.mkdir(parents=True, exist_ok=True)
    folders = {"fit": fit_dir, "test": test_dir}
    for folder, name, published in RUN_FILES:
        if (folders[folder] / name).exists():
            shutil.copy(folders[folder] / name, out / published)
    relative_checkpoint_paths(out / "fit_report.json", fit_dir)
    (out / "commands.sh").write_text("# run from the repository root\n" + "\n".join(map(portable, cmds)) + "\n")


def log_to_wandb(dataset: str, rows: list[dict], save_dir: Path) -> None:
    """Log the benchmark table as one W&B ``benchmark`` run (offline unless ``WANDB_MODE`` says otherwise)."""
    from benchmarks.wandb_report import log_benchmark, save_report_if_online

    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "per_class_acc"} for r in rows])
    summary = frame.groupby("model", sort=False)[["acc", "mca", "f1_macro"]].agg(["mean", "std"])
    summary.columns = [f"{a}_{b}" for a, b in summary.columns]
    folder = log_benchmark(dataset, frame, summary.reset_index(), save_dir)
    url = save_report_if_online(dataset)
    print(f"W&B: benchmark run in {folder}" + (f"; report {url}" if url else " (report saved only when online)"))
