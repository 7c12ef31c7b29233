"""One prepared GPU check: every leaderboard row for one epoch under the protocol's GPU variant; img/s and memory.

Each row of ``experiments/<dataset>/index.yaml`` is fitted for one epoch with its configs and
``experiments/<dataset>/_base/gpu.yaml`` composed after the protocol base (224 px, bf16-mixed, DDP on every GPU),
one row at a time. The table records the GPU, world size, training img/s (all ranks), peak CUDA memory of rank 0,
mean GPU utilisation (``nvidia-smi`` every 500 ms over the whole row), peak resident memory and wall time per row,
and the command that made it. ``--dry-run`` runs the same plumbing on
the CPU (64 px, fp32, one process, two batches): that is how the script is tested where no GPU is lent.

Usage (on the GPU machine)::

    python -m benchmarks.gpu_epoch --dataset ferplus --data-root ../shared/data/ferplus \\
        --out benchmarks/results/gpu/ferplus_epoch.md
    python -m benchmarks.gpu_epoch --dataset ferplus --data-root ../shared/data/ferplus --dry-run  # CPU check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.paths import ROOT
from benchmarks.publish import finish_report
from benchmarks.recipes import experiment_files, experiment_index, override_args

DRY_RUN = [
    "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
    "--trainer.precision", "32-true", "--data.image_size", "64", "--data.num_workers", "0",
    "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
]  # fmt: skip


def row_command(dataset: str, row: str, data_root: str | None, run_dir: Path, extra: list[str]) -> list[str]:
    """``fer-zoo fit`` for one epoch of ``row`` with the GPU variant after its protocol base."""
    configs = experiment_files(dataset, row)
    gpu = ROOT / "experiments" / dataset / "_base" / "gpu.yaml"
    if not configs or not gpu.is_file():
        raise SystemExit(f"benchmarks.gpu_epoch: {dataset} row {row!r} has no configs, or {gpu} is missing")
    composed = [configs[0], gpu, *configs[1:]]
    cmd = [sys.executable, "-m", "fer_zoo", "fit", *[a for c in composed for a in ("--config", str(c))]]
    if data_root:
        cmd += ["--data.root", data_root]
    return cmd + ["--trainer.max_epochs", "1", "--wandb", "disabled", "--run_dir", str(run_dir), *extra]


def mean_utilisation(samples: str) -> float | None:
    """Mean of the per-sample GPU utilisation percentages ``nvidia-smi`` printed (one number per line and GPU)."""
    values = [float(v) for line in samples.splitlines() for v in line.split(",") if v.strip().replace(".", "").isdigit()]
    return sum(values) / len(values) if values else None


def start_utilisation_sampler() -> subprocess.Popen | None:
    """``nvidia-smi`` sampling GPU utilisation every 500 ms, or None where there is no ``nvidia-smi``.

    Why: a one-epoch img/s alone cannot tell a loader-bound row from a GPU-bound one.
    """
    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "500"]
    return subprocess.Popen(query, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def stop_utilisation_sampler(sampler: subprocess.Popen | None) -> float | None:
    """Stop the sampler and return its mean utilisation (%)."""
    if sampler is None:
        return None
    sampler.terminate()
    out, _ = sampler.communicate(timeout=10)
    return mean_utilisation(out)


def device_name() -> str:
    """The GPU's name (and count), or the CPU."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> None:
    """Fit every row for one epoch and write the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ferplus")
    p.add_argument("--data-root", default=None)
    p.add_argument("--rows", default=None, help="comma-separated index rows (default: all)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "gpu-epoch"))
    p.add_argument("--dry-run", action="store_true", help="CPU plumbing check: 64 px, fp32, one process, 2 batches")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="extra fit option")
    p.add_argument("--out", default=None, help="Markdown file for the table")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    rows = args.rows.split(",") if args.rows else list(experiment_index(args.dataset).get("rows") or {})
    extra = (DRY_RUN if args.dry_run else []) + override_args(args.override)
    device = device_name()
    lines = [
        f"# One epoch per row, GPU variant of the {args.dataset} protocol ({'CPU dry run' if args.dry_run else device})",
        "",
        f"Device: {device}. Configs: each row's protocol base, then `experiments/{args.dataset}/_base/gpu.yaml`, then "
        "the row's delta; one epoch (train + validation), one row at a time.",
        "",
        "| row | world size | train img/s (all ranks) | peak CUDA MB (rank 0) | mean GPU util % | peak RSS MB | wall s | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        run_dir = Path(args.runs) / args.dataset / row
        cmd = row_command(args.dataset, row, args.data_root, run_dir, extra)
        start = time.perf_counter()
        sampler = start_utilisation_sampler()  # start-up and validation included: a lower bound on training's share
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        utilisation = stop_utilisation_sampler(sampler)
        wall = time.perf_counter() - start
        report_path = run_dir / "fit_report.json"
        if done.returncode != 0 or not report_path.is_file():
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:200].replace("|", "/")
            lines.append(f"| {row} | | | | | | {wall:.0f} | failed: {last} |")
            print(f"{row}: failed ({last})", flush=True)
            continue
        report = json.loads(report_path.read_text())
        cuda = report.get("peak_cuda_mb")
        lines.append(
            f"| {row} | {report['world_size']} | {report['train_img_per_s'] or 0:.1f} | "
            f"{f'{cuda:.0f}' if cuda is not None else '–'} | {f'{utilisation:.0f}' if utilisation is not None else '–'} | "
            f"{report.get('peak_rss_mb') or 0:.0f} | {wall:.0f} | ok |"
        )
        print(lines[-1], flush=True)
    finish_report(lines, "benchmarks.gpu_epoch", argv, args.out)


if __name__ == "__main__":
    main()
