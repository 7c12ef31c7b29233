"""Re-test published runs with horizontal-flip test-time augmentation, beside their single-view figures.

Each argument is a run folder that ``benchmarks.run`` published (``benchmarks/results/<table>/<dataset>/<model>/
s<seed>/``). Its ``commands.sh`` holds the exact ``fer_zoo test`` command of the single-view figure; this script
runs that command again with ``--model.init_args.test_time_flip true`` (the mean class probabilities of each
test image and its mirror image) and a run folder of its own, so the checkpoint, data and split are the same and
only the test-time view changes. Selection stays on single-view validation. The checkpoints live under ``runs/``
(not committed), so a folder whose checkpoint is gone is an error naming it.

Usage:
    python -m benchmarks.studies.flip_tta benchmarks/results/ferplus_face/runs/ferplus/baseline-faceres/s0 ... \\
        --runs runs/flip-tta --out benchmarks/results/flip_tta/ferplus.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import pandas as pd

from benchmarks.paths import ROOT
from benchmarks.publish import portable
from benchmarks.run import run
from benchmarks.tables import mean_std

FLIP = ["--model.init_args.test_time_flip", "true"]
METRICS = {"OA": "test/acc", "MCA": "test/mca", "macro-F1": "test/f1_macro"}


def published_test_command(folder: Path) -> list[str]:
    """The ``fer_zoo test`` command of a published run, as an argument list (``python`` -> this interpreter)."""
    commands = folder / "commands.sh"
    if not commands.is_file():
        raise SystemExit(f"{commands}: missing; pass a run folder that benchmarks.run published")
    for line in commands.read_text().splitlines():
        cmd = shlex.split(line)
        if cmd[:4] == ["python", "-m", "fer_zoo", "test"]:
            return [sys.executable, *cmd[1:]]
    raise SystemExit(f"{commands}: no 'python -m fer_zoo test' line")


def option(cmd: list[str], name: str) -> str:
    """The value of ``--name`` in ``cmd``."""
    if name not in cmd:
        raise SystemExit(f"{shlex.join(cmd)}: has no {name}")
    return cmd[cmd.index(name) + 1]


def flip_command(cmd: list[str], run_dir: Path) -> list[str]:
    """``cmd`` with the flip option added and its run folder replaced by ``run_dir``."""
    out = list(cmd)
    out[out.index("--run_dir") + 1] = str(run_dir)
    return out + FLIP


def retest(folder: Path, runs: Path) -> dict[str, object]:
    """Single-view (published) and flip-TTA test metrics of one run folder."""
    cmd = published_test_command(folder)
    ckpt = ROOT / option(cmd, "--ckpt_path")
    if not ckpt.is_file():
        raise SystemExit(f"{folder}: its checkpoint {ckpt} is gone (run folders are not committed); re-fit it first")
    table, _, dataset, model, seed = folder.parts[-5:]  # <study>/runs/<dataset>/<model>/s<seed>
    run_dir = runs / table / dataset / model / seed
    flip_cmd = flip_command(cmd, run_dir)
    report = run_dir / "test_report.json"
    if not report.is_file() or report.stat().st_mtime < ckpt.stat().st_mtime:
        run(flip_cmd, run_dir.parent / f"{seed}.log")
    single = json.loads((folder / "test_report.json").read_text())
    flipped = json.loads(report.read_text())
    row: dict[str, object] = {"table": table, "model": model, "seed": int(seed.lstrip("s")), "command": flip_cmd}
    for name, key in METRICS.items():
        row[name] = 100 * single[key]
        row[f"{name} flip"] = 100 * flipped[key]
    return row


def tabulate(rows: list[dict[str, object]], argv: list[str]) -> str:
    """Markdown: per row mean ± std over seeds, single view and flip, and the OA gain."""
    frame = pd.DataFrame(rows)
    lines = [
        "# Horizontal-flip test-time augmentation on published runs",
        "",
        f"Command: `python -m benchmarks.studies.flip_tta {shlex.join(argv)}`",
        "",
        "Same checkpoints (selected on single-view validation), same test split; only the test-time view changes: "
        "*flip* averages the class probabilities of each test image and its mirror image "
        "(`--model.init_args.test_time_flip true`). Mean ± std over seeds.",
        "",
        "| table | model | seeds | OA | OA flip | Δ OA | MCA | MCA flip | macro-F1 | macro-F1 flip |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(values: pd.Series) -> str:
        return mean_std(values, scale=1.0)  # rows hold percentages already

    for (table, model), group in frame.groupby(["table", "model"], sort=False):
        seeds = ",".join(str(s) for s in group["seed"])
        gain = group["OA flip"] - group["OA"]
        lines.append(
            f"| {table} | {model} | {seeds} | {cell(group['OA'])} | {cell(group['OA flip'])} | {gain.mean():+.2f} | "
            f"{cell(group['MCA'])} | {cell(group['MCA flip'])} | {cell(group['macro-F1'])} | "
            f"{cell(group['macro-F1 flip'])} |"
        )
    lines += ["", "Flip test commands (one per run):", ""]
    lines += [f"- `{portable(row['command'])}`" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Re-test each published run folder with flip TTA and write the table."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, help="published run folders (.../<dataset>/<model>/s<seed>)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "flip-tta", help="where the flip test runs go")
    p.add_argument("--out", type=Path, default=None, help="markdown file to write (default: print)")
    args = p.parse_args(argv)
    text = tabulate([retest(folder.resolve(), args.runs.resolve()) for folder in args.folders], argv)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
