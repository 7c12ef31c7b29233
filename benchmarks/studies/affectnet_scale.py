"""AffectNet at full size: pack time, memory of the main process and loader workers, cache size, loader img/s.

Writes a generated tree in AffectNet's exact layout with as many training rows as the real manually
annotated set (287,651; plus 5,500 validation rows): synthetic faces (``fer_zoo.datasets.synthetic``)
pasted into 160x160 JPEGs at random face boxes, 68 landmarks per row, AffectNet's 11 expression ids
(8-10 are dropped by the loader, as in the real file). To keep writing fast, a pool of rendered
images is re-used (each row is its own file; the bytes of a pool image are copied).

Then, in a fresh process per size: parse the CSV and pack the 112 px cache (``AffectNet(root, 'train')``),
time it, and report peak resident memory (private ``RssAnon`` and file-backed ``RssFile`` from
``/proc/<pid>/status``) of the main process; open it again from the cache; iterate the training loader
(2 workers, standard augmentation) with shuffling and with the ``class_balanced`` sampler, reporting
img/s and each worker's memory. The same is measured on a small tree (3,000 rows) and the difference
per training sample is tabulated: what grows with the dataset.

Usage::

    python -m benchmarks.studies.affectnet_scale --root /tmp/affectnet-287k [--rows 287651] [--small-rows 3000]

Writes ``benchmarks/results/affectnet_scale/affectnet.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.paths import RESULTS

NOTE = RESULTS / "affectnet_scale" / "NOTES.md"
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


def measure(root: Path, rows: int, batches: int, workers: int, first_use: bool) -> dict:
    """One size, in this (fresh) process.

    ``first_use``: delete the cache, then parse and pack (time, memory). Otherwise: open the existing
    cache, as every later training run does, then iterate the loaders (img/s, memory of all processes).
    """
    import torch

    from fer_zoo.datamodules import AffectNetDataModule

    torch.set_num_threads(1)
    write_s = write_tree(root, rows)
    cache = root.parent / (root.name + "-cache")
    if first_use:
        shutil.rmtree(cache, ignore_errors=True)
    before = memory()
    dm = AffectNetDataModule(root=str(root), protocol=8, num_workers=workers, batch_size=64, image_size=112,
                             cache_dir=str(cache), augment="standard")
    start = time.perf_counter()
    data = dm.dataset("train")
    out = {"rows": rows, "samples": len(data), "write_s": write_s, "open_s": time.perf_counter() - start,
           "before": before, "after_open": memory(), "cores": os.cpu_count(), "loaders": []}
    files = [f for f in cache.rglob("*") if f.is_file()]
    pixels = sum(f.stat().st_size for f in files if f.suffix == ".u8")
    out.update(pixels_gb=pixels / 1e9, other_mb=(sum(f.stat().st_size for f in files) - pixels) / 1e6)
    for sampler in () if first_use else ("none", "class_balanced"):
        dm.sampler = sampler
        loader = dm.train_dataloader()
        it = iter(loader)
        next(it)
        n_batches = min(batches, len(loader) - 1)
        start, n = time.perf_counter(), 0
        for _ in range(n_batches):
            n += len(next(it)["label"])
        rate = n / (time.perf_counter() - start)
        out["loaders"].append({"sampler": sampler, "img_s": rate, "batches": n_batches,
                               "workers": [memory(pid) for pid in children()], "main": memory()})
        del it, loader
    return out


def table(big: tuple[dict, dict], small: tuple[dict, dict] | None, command: str) -> str:
    """The markdown report: the full-size runs (first use, cache hit), then the per-sample growth against the small ones."""
    first, hit = big
    lines = [
        "# AffectNet at full size (generated tree in the official layout)",
        "",
        "```",
        command,
        "```",
        "",
        f"{first['rows']:,} training rows (as AffectNet's manually annotated training set; expression ids 8-10 dropped "
        f"by the loader as in the real file) -> {first['samples']:,} training samples after the validation hold-out; "
        f"machine: {first['cores']} cores. Two fresh processes per size: *first use* deletes the cache, then parses "
        "and packs; *cache hit* opens it as every later run does and iterates the loaders.",
        "",
        "| step | measured |",
        "|---|---|",
        f"| write the tree (JPEGs + CSVs) | {first['write_s']:.0f} s"
        f"{' (already written by an earlier run)' if first['write_s'] == 0 else ''} |",
        f"| first use: parse the CSV + pack the 112 px cache | {first['open_s']:.0f} s "
        f"({first['samples'] / first['open_s']:.0f} img/s) |",
        f"| cache hit: key of the CSV and image files, memory-map pixels and parsed rows | {hit['open_s']:.1f} s |",
        f"| cache on disk | pixels {first['pixels_gb']:.2f} GB ({first['samples']:,} x 112 x 112 x 3 B); parsed rows "
        f"and metadata {first['other_mb']:.0f} MB |",
        f"| first use, main process | before {first['before']['VmRSS']:.0f} MiB; peak {first['after_open']['VmHWM']:.0f}"
        f" MiB; after: private {first['after_open']['RssAnon']:.0f} MiB + file-backed (memory maps) "
        f"{first['after_open']['RssFile']:.0f} MiB |",
        f"| cache hit, main process | before {hit['before']['VmRSS']:.0f} MiB; after: private "
        f"{hit['after_open']['RssAnon']:.0f} MiB + file-backed {hit['after_open']['RssFile']:.0f} MiB |",
    ]
    for run in hit["loaders"]:
        worker_text = "; ".join(f"private {w.get('RssAnon', 0):.0f} MiB, file {w.get('RssFile', 0):.0f} MiB"
                                for w in run["workers"]) or "none found"
        lines.append(f"| loader, batch 64, {len(run['workers'])} workers, standard augmentation, sampler "
                     f"`{run['sampler']}` | {run['img_s']:.0f} img/s over {run['batches']} batches; workers: "
                     f"{worker_text}; main private {run['main']['RssAnon']:.0f} MiB |")
    if small:
        small_first, small_hit = small
        extra = first["samples"] - small_first["samples"]

        def row(label: str, a: float, b: float) -> str:
            return f"| {label} | {a:,.0f} MiB | {b:,.0f} MiB | {(b - a) * 2**20 / extra:,.0f} B |"

        worker = lambda r, key: max(w.get(key, 0) for w in r["loaders"][-1]["workers"])
        lines += [
            "",
            "## Is memory flat in the dataset size?",
            "",
            f"The same measurements at {small_first['rows']:,} rows ({small_first['samples']:,} training samples), in "
            "fresh processes:",
            "",
            f"| | {small_first['rows']:,} rows | {first['rows']:,} rows | per extra training sample ({extra:,}) |",
            "|---|---:|---:|---:|",
            row("first use: main process, peak while parsing and packing", small_first["after_open"]["VmHWM"],
                first["after_open"]["VmHWM"]),
            row("first use: main process, private memory after packing", small_first["after_open"]["RssAnon"],
                first["after_open"]["RssAnon"]),
            row("cache hit: main process, private memory after opening", small_hit["after_open"]["RssAnon"],
                hit["after_open"]["RssAnon"]),
            row("cache hit: main process, private memory after both loaders", small_hit["loaders"][-1]["main"]["RssAnon"],
                hit["loaders"][-1]["main"]["RssAnon"]),
            row("cache hit: loader worker (largest), private memory", worker(small_hit, "RssAnon"),
                worker(hit, "RssAnon")),
            row("cache hit: loader worker (largest), file-backed (memory-map pages it read)",
                worker(small_hit, "RssFile"), worker(hit, "RssFile")),
            f"| cache on disk | {small_first['pixels_gb'] * 1e3:,.0f} MB + {small_first['other_mb']:.1f} MB | "
            f"{first['pixels_gb'] * 1e3:,.0f} MB + {first['other_mb']:.0f} MB | "
            f"{(first['pixels_gb'] - small_first['pixels_gb']) * 1e9 / extra:,.0f} B + "
            f"{(first['other_mb'] - small_first['other_mb']) * 1e6 / extra:,.0f} B |",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Measure each size in a fresh process; tabulate."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/tmp/affectnet-287k", help="tree of the full size")
    p.add_argument("--rows", type=int, default=287651)
    p.add_argument("--small-rows", type=int, default=3000, help="a second, small tree (0: skip the comparison)")
    p.add_argument("--batches", type=int, default=150)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "affectnet_scale" / "affectnet.md"))
    p.add_argument("--one", metavar="JSON", help=argparse.SUPPRESS)  # internal: measure --root/--rows into JSON
    a = p.parse_args(argv)
    if a.one:
        first_use = a.one.endswith(".first.json")
        Path(a.one).write_text(json.dumps(measure(Path(a.root), a.rows, a.batches, a.workers, first_use)))
        return
    sizes = [(Path(a.root), a.rows)]
    if a.small_rows:
        sizes.insert(0, (Path(a.root).with_name(f"affectnet-{a.small_rows}"), a.small_rows))
    runs = []
    for root, rows in sizes:
        pair = []
        for stage in ("first", "hit"):
            out = Path(a.out).with_suffix(f".{rows}.{stage}.json")
            subprocess.run([sys.executable, "-m", "benchmarks.studies.affectnet_scale", "--root", str(root), "--rows",
                            str(rows), "--batches", str(a.batches), "--workers", str(a.workers), "--one", str(out)],
                           check=True)
            pair.append(json.loads(out.read_text()))
        runs.append(tuple(pair))
    text = table(runs[-1], runs[0] if len(runs) > 1 else None,
                 f"python -m benchmarks.studies.affectnet_scale {' '.join(sys.argv[1:] if argv is None else argv)}")
    if NOTE.exists():  # the reading of the figures, written after looking at them
        text += "\n" + NOTE.read_text()
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
