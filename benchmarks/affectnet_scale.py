"""AffectNet at full size: pack time, memory of the main process and loader workers, cache size, loader img/s.

Writes a generated tree in AffectNet's exact layout with as many training rows as the real manually
annotated set (287,651; plus 5,500 validation rows): synthetic faces (``fer_zoo.datasets.synthetic``)
pasted into 160x160 JPEGs at random face boxes, 68 landmarks per row, AffectNet's 11 expression ids
(8-10 are dropped by the loader, as in the real file). To keep writing fast, a pool of rendered
images is re-used (each row is its own file; the bytes of a pool image are copied).

Then, in this process: parse the CSV and pack the 112 px cache (``AffectNet(root, 'train')``), time it,
and report peak resident memory (private ``RssAnon`` and file-backed ``RssFile`` from
``/proc/<pid>/status``) of the main process; iterate the training loader (2 workers, standard
augmentation) with shuffling and with the ``class_balanced`` sampler, reporting img/s and each
worker's memory.

Usage::

    python -m benchmarks.affectnet_scale --root /tmp/affectnet-287k [--rows 287651] [--batches 150]

Writes ``benchmarks/results/affectnet_scale.md``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
#: AffectNet training-set class shares (neutral, happy, sad, surprise, fear, disgust, anger, contempt,
#: none, uncertain, non-face), from the dataset paper's counts; the generated labels follow them.
SHARES = np.array([74874, 134415, 25459, 14090, 6378, 3803, 24882, 3750, 33088, 11645, 82414], dtype=float)


def write_tree(root: Path, rows: int, val_rows: int = 5500, pool: int = 256, seed: int = 0) -> float:
    """Write the tree; returns seconds taken (skipped when the CSVs exist with the right row count)."""
    from PIL import Image

    from fer_zoo.datasets.synthetic import render_face
    from fer_zoo.labels import CLASSES

    lists = root / "Manually_Annotated_file_lists"
    train_csv = lists / "training.csv"
    if train_csv.exists() and sum(1 for _ in open(train_csv)) == rows + 1:
        return 0.0
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    names = CLASSES["synthetic"]  # the renderer's 7 expressions (no contempt face); labels come from SHARES
    encoded, landmarks = [], []
    for i in range(pool):
        canvas = np.full((160, 160, 3), rng.integers(40, 200), np.uint8)
        face, points = render_face(rng, names[i % len(names)], 96, names)
        x, y = rng.integers(0, 64, 2)
        canvas[y : y + 96, x : x + 96] = face
        buffer = io.BytesIO()
        Image.fromarray(canvas).save(buffer, format="JPEG", quality=85)
        encoded.append(buffer.getvalue())
        landmarks.append((x, y, points + [x, y]))
    lists.mkdir(parents=True, exist_ok=True)
    for csv_name, n in (("training.csv", rows), ("validation.csv", val_rows)):
        labels = rng.choice(len(SHARES), size=n, p=SHARES / SHARES.sum())
        with open(lists / csv_name, "w") as handle:
            handle.write(HEADER + "\n")
            for row, expression in enumerate(labels):
                k = int(rng.integers(pool))
                x, y, points = landmarks[k]
                sub = f"{row % 1000}/{csv_name[0]}{row:07d}.jpg"
                path = root / "Manually_Annotated_Images" / sub
                if row < 1000:
                    path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(encoded[k])
                lm = ";".join(f"{v:.1f}" for v in points.reshape(-1))
                handle.write(f"{sub},{x},{y},96,96,{lm},{expression},0.0,0.0\n")
    return time.perf_counter() - start


def memory(pid: int | str = "self") -> dict[str, float]:
    """Peak and current resident memory of a process in MiB (``/proc/<pid>/status``)."""
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) / 1024
    return out


def children() -> list[int]:
    """Pids of this process' children (DataLoader workers)."""
    me, kids = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                kids.append(int(entry))
    return kids


def main(argv: list[str] | None = None) -> None:
    """Write, pack, load; tabulate."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/tmp/affectnet-287k")
    p.add_argument("--rows", type=int, default=287651)
    p.add_argument("--batches", type=int, default=150)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "affectnet_scale.md"))
    a = p.parse_args(argv)
    import torch

    from fer_zoo.datamodules import AffectNetDataModule

    torch.set_num_threads(1)
    root = Path(a.root)
    write_s = write_tree(root, a.rows)
    cache = root.parent / (root.name + "-cache")
    shutil.rmtree(cache, ignore_errors=True)
    before = memory()
    dm = AffectNetDataModule(root=str(root), protocol=8, num_workers=a.workers, batch_size=64, image_size=112,
                             cache_dir=str(cache), augment="standard")
    start = time.perf_counter()
    train = dm.dataset("train")
    pack_s = time.perf_counter() - start
    after_pack = memory()
    start = time.perf_counter()
    dm.datasets.clear()
    reopened = dm.dataset("train")
    reopen_s = time.perf_counter() - start
    cache_gb = sum(f.stat().st_size for f in cache.glob("*")) / 1e9
    rows = []
    for sampler in ("none", "class_balanced"):
        dm.sampler = sampler
        loader = dm.train_dataloader()
        it = iter(loader)
        next(it)
        batches = min(a.batches, len(loader) - 1)
        start, n = time.perf_counter(), 0
        for _ in range(batches):
            n += len(next(it)["label"])
        rate = n / (time.perf_counter() - start)
        workers = [memory(pid) for pid in children()]
        rows.append((sampler, rate, workers, memory(), batches))
        del it, loader
    lines = [
        "# AffectNet at full size (generated tree in the official layout)",
        "",
        "```",
        f"python -m benchmarks.affectnet_scale {' '.join(sys.argv[1:] if argv is None else argv)}",
        "```",
        "",
        f"{a.rows:,} training rows (as AffectNet's manually annotated training set; expression ids 8-10 dropped by "
        f"the loader as in the real file) -> {len(reopened):,} training samples after the validation hold-out; "
        f"machine: {os.cpu_count()} cores; other training jobs shared it (see the closing note), so times are upper "
        "bounds.",
        "",
        "| step | measured |",
        "|---|---|",
        f"| write the tree (JPEGs + CSVs) | {write_s:.0f} s{' (already written)' if write_s == 0 else ''} |",
        f"| parse CSV + pack the 112 px cache (first use) | {pack_s:.0f} s ({len(train) / pack_s:.0f} img/s) |",
        f"| open again (cache hit: parse CSV + key + memmap) | {reopen_s:.1f} s |",
        f"| cache on disk | {cache_gb:.2f} GB ({len(train):,} x 112 x 112 x 3 B + metadata) |",
        f"| main process before | RSS {before['VmRSS']:.0f} MiB |",
        f"| main process after packing | peak {after_pack['VmHWM']:.0f} MiB; now private {after_pack['RssAnon']:.0f} "
        f"MiB + file-backed (memmap pages) {after_pack['RssFile']:.0f} MiB |",
    ]
    for sampler, rate, workers, main_mem, batches in rows:
        worker_text = "; ".join(f"private {w.get('RssAnon', 0):.0f} MiB, file {w.get('RssFile', 0):.0f} MiB"
                                for w in workers) or "none found"
        lines.append(f"| loader, batch 64, {a.workers} workers, standard augmentation, sampler `{sampler}` | "
                     f"{rate:.0f} img/s over {batches} batches; workers: {worker_text}; main private "
                     f"{main_mem['RssAnon']:.0f} MiB |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
