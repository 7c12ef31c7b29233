"""Colour or grey face crops for a model trained on grey FERPlus images? Measured on the in-the-wild photos.

For each checkpoint, ``fer-zoo predict`` runs on ``../shared/data/in_the_wild`` twice (``--data.greyscale
false`` and ``true``). Photos whose file name is an expression (``angry``, ``happy``, ``sad``: mapped by
``fer_zoo.labels.canonical_name``) are scored: top-1 and the probability of the named class. For every
face the table also gives both predictions and the mean |Δp| between the two modes.

Usage::

    python -m benchmarks.studies.greyscale --photos ../shared/data/in_the_wild --ckpt A.ckpt [B.ckpt ...]

Writes ``benchmarks/results/greyscale/in_the_wild.md``.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.paths import RESULTS
from fer_zoo.labels import canonical_name


def predict(ckpt: str, photos: str, grey: bool, run_dir: Path) -> list[dict]:
    """Rows of ``fer-zoo predict`` on ``photos``."""
    cmd = [sys.executable, "-m", "fer_zoo", "predict", "--data", "folder", "--data.root", photos,
           "--data.greyscale", str(grey).lower(), "--ckpt_path", ckpt, "--trainer.accelerator", "cpu",
           "--wandb", "disabled", "--run_dir", str(run_dir)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(run_dir / "predictions.csv") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> None:
    """Run both modes per checkpoint; tabulate."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", default="../shared/data/in_the_wild")
    p.add_argument("--ckpt", nargs="+", required=True)
    p.add_argument("--out", default=str(RESULTS / "greyscale" / "in_the_wild.md"))
    a = p.parse_args(argv)
    lines = ["# Colour vs grey face crops on the in-the-wild photos", "", "```",
             f"python -m benchmarks.studies.greyscale {' '.join(sys.argv[1:] if argv is None else argv)}", "```", ""]
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, ckpt in enumerate(a.ckpt):
            runs = {g: predict(ckpt, a.photos, g, Path(tmp) / f"{k}-{g}") for g in (False, True)}
            classes = [c[2:] for c in runs[False][0] if c.startswith("p_")]
            lines += [f"## `{ckpt}`", "", "| photo | face | named class | colour: top-1 (p named) | grey: top-1 "
                      "(p named) | mean abs Δp |", "|---|---|---|---|---|---:|"]
            hits = {False: 0, True: 0}
            named_p = {False: [], True: []}
            deltas = []
            for colour, grey in zip(runs[False], runs[True]):
                name = canonical_name(Path(colour["path"]).stem)
                pc = np.array([float(colour[f"p_{c}"]) for c in classes])
                pg = np.array([float(grey[f"p_{c}"]) for c in classes])
                deltas.append(float(np.abs(pc - pg).mean()))
                cells = []
                for mode, row, probs in ((False, colour, pc), (True, grey, pg)):
                    if name:
                        hits[mode] += row["prediction"] == name
                        named_p[mode].append(probs[classes.index(name)])
                    cells.append(f"{row['prediction']}" + (f" ({probs[classes.index(name)]:.2f})" if name else ""))
                lines.append(f"| {Path(colour['path']).name} | {colour['face']} | {name or '–'} | {cells[0]} | "
                             f"{cells[1]} | {deltas[-1]:.3f} |")
            n = len(named_p[False])
            summary.append((ckpt, n, hits[False], hits[True], np.mean(named_p[False]), np.mean(named_p[True]),
                            np.mean(deltas)))
            lines.append("")
    lines += ["## Summary", "", "| checkpoint | labelled faces | colour top-1 | grey top-1 | colour mean p(named) | "
              "grey mean p(named) | mean abs Δp, all faces |", "|---|---:|---:|---:|---:|---:|---:|"]
    for ckpt, n, hc, hg, pc, pg, d in summary:
        parts = Path(ckpt).parts
        label = "/".join(parts[-7:-3:2] + parts[-4:-3]) if len(parts) >= 7 else Path(ckpt).name
        lines.append(f"| `{label}` | {n} | {hc}/{n} | {hg}/{n} | {pc:.3f} | {pg:.3f} | {d:.3f} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
