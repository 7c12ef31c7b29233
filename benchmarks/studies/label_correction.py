"""How far LA-Net's label distribution estimation (LDE) moved its target bank towards the clean labels.

    python -m benchmarks.studies.label_correction runs/bench-noise20/ferplus/lanet/s0/fit runs/bench-noise20/ferplus/lanet/s1/fit \
        --out benchmarks/results/ferplus_noise20/lanet_label_correction.md

Reads each run's ``checkpoints/last.ckpt`` (the bank ``B``, one row per training image) and
``train_labels_noisy.csv`` (noisy and clean label per row, in dataset order, written by the noisy-label
protocol). For the flipped images it reports how often the bank's top class is the clean label
(corrected) or still the noisy one, the mean bank weight on each, and how often the clean label is
the bank's strongest class after the noisy one (chance: 1 / (classes - 1)).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import torch


def correction_stats(run_dir: Path) -> dict[str, float]:
    """Bank statistics of one LA-Net fit folder."""
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    bank = checkpoint["state_dict"]["bank"].float()
    labels = pd.read_csv(run_dir / "train_labels_noisy.csv")
    if len(labels) != len(bank):
        raise ValueError(f"{run_dir}: bank has {len(bank)} rows but train_labels_noisy.csv has {len(labels)}")
    noisy = torch.tensor(labels["noisy_label"].to_numpy())
    clean = torch.tensor(labels["clean_label"].to_numpy())
    flipped = noisy != clean
    rows = torch.arange(len(bank))
    top = bank.argmax(1)
    runner_up = bank.clone()
    runner_up[rows, noisy] = -1
    return {
        "epochs": int(checkpoint["epoch"]) + 1,
        "flipped_share": flipped.float().mean().item(),
        "flipped_top_is_clean": (top == clean)[flipped].float().mean().item(),
        "flipped_top_is_noisy": (top == noisy)[flipped].float().mean().item(),
        "flipped_weight_noisy": bank[rows, noisy][flipped].mean().item(),
        "flipped_weight_clean": bank[rows, clean][flipped].mean().item(),
        "flipped_clean_runner_up": (runner_up.argmax(1) == clean)[flipped].float().mean().item(),
        "kept_weight_label": bank[rows, clean][~flipped].mean().item(),
        "chance_runner_up": 1.0 / (bank.shape[1] - 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Tabulate the bank statistics of the given LA-Net runs."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="LA-Net fit folders")
    p.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = p.parse_args(argv)
    lines = [
        "# LA-Net: how far LDE moved the target bank towards the clean labels",
        "",
        f"Command: `python -m benchmarks.studies.label_correction {shlex.join(argv)}` ({time.strftime('%Y-%m-%d')}).",
        "",
        (
            "| run | epochs | flipped | flipped: top = clean | flipped: top = noisy | flipped: B[noisy] "
            "| flipped: B[clean] | flipped: clean is runner-up (chance) | kept: B[label] |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in args.runs:
        s = correction_stats(run)
        lines.append(
            f"| `{run}` | {s['epochs']} | {100 * s['flipped_share']:.1f} % | {100 * s['flipped_top_is_clean']:.1f} % "
            f"| {100 * s['flipped_top_is_noisy']:.1f} % | {s['flipped_weight_noisy']:.3f} | {s['flipped_weight_clean']:.3f} "
            f"| {100 * s['flipped_clean_runner_up']:.1f} % ({100 * s['chance_runner_up']:.1f} %) "
            f"| {s['kept_weight_label']:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
