"""Tabulate single-change ablation runs from their own logs (``metrics.csv``) and configs.

Each argument is ``LABEL=RUN_DIR``; the table gives, per run, the best and last validation
accuracy, the last training accuracy, and the command line options that differ from the first
run. Used for the method-tuning records under ``benchmarks/results/`` (e.g. E2N and LaCoVL from
random init on the synthetic set), so every figure there comes from a run's log.

Usage:
    python -m benchmarks.studies.ablation_table "released=runs/exp/a" "learned scale=runs/exp/b" --out table.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    """``{"model.init_args.lr": 0.001, ...}`` from a nested config."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def summarise(run_dir: Path) -> dict[str, object]:
    """Best/last val accuracy, last train accuracy and epochs of one run, from its CSV log."""
    frame = pd.read_csv(run_dir / "metrics.csv")
    val = frame.dropna(subset=["val/acc"]).groupby("epoch")["val/acc"].last()
    train = frame.dropna(subset=["train/acc"]).groupby("epoch")["train/acc"].last() if "train/acc" in frame else None
    return {
        "epochs": int(val.index.max()) + 1 if len(val) else 0,
        "best_val": float(val.max()) if len(val) else float("nan"),
        "best_epoch": int(val.idxmax()) if len(val) else -1,
        "last_val": float(val.iloc[-1]) if len(val) else float("nan"),
        "last_train": float(train.iloc[-1]) if train is not None and len(train) else float("nan"),
    }


def differences(reference: dict[str, object], other: dict[str, object]) -> str:
    """Model/data/trainer options of ``other`` that differ from ``reference``."""
    keys = sorted(k for k in set(reference) | set(other) if k.split(".")[0] in ("model", "data", "trainer"))
    skip = ("class_names", "num_classes", "log_every_n_steps")  # linked or logging-only options
    keys = [k for k in keys if not k.endswith(skip) and reference.get(k) != other.get(k)]
    return ", ".join(f"`{k.replace('.init_args', '')}={other.get(k)}`" for k in keys) or "(reference)"


def main(argv: list[str] | None = None) -> None:
    """Parse ``LABEL=RUN_DIR`` pairs and write the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    p.add_argument("--out", default=None, help="markdown file to write (default: print)")
    p.add_argument("--title", default="Ablation")
    args = p.parse_args(argv)
    lines = [
        f"# {args.title}",
        "",
        "| run | changes against the first row | epochs | best val OA (epoch) | last val OA | last train OA |",
        "|---|---|---|---|---|---|",
    ]
    reference = None
    for item in args.runs:
        label, _, path = item.rpartition("=")  # labels may hold "="; run folders do not
        run_dir = Path(path)
        config = flatten(yaml.safe_load((run_dir / "lightning_config.yaml").read_text()))
        reference = reference or config
        s = summarise(run_dir)
        lines.append(
            f"| {label} | {differences(reference, config)} | {s['epochs']} | {100 * s['best_val']:.1f} "
            f"({s['best_epoch']}) | {100 * s['last_val']:.1f} | {100 * s['last_train']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
