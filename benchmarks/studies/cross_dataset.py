"""Cross-dataset evaluation on a labelled folder: a FERPlus model tested on a class-folder tree.

The FERPlus test images are written as a labelled folder the way users keep their own sets
(``happy/``, ``sad/``, ``angry/``, ``surprised/``, ``neutral/``, ``disgusted/``, ``fearful/``;
no ``contempt/`` folder, so the model has one class the set lacks). ``fer-zoo test --data
imagefolder --ckpt_path X`` must then give what ``fer-zoo test --data ferplus`` gives on the
same images restricted to those classes, in both argmax modes:

- ``all``: argmax over every model class (a contempt prediction is an error);
- ``shared``: argmax over the classes the folder has.

Usage::

    python -m benchmarks.studies.cross_dataset --root ../shared/data/ferplus \\
        --ckpt runs/bench-e2n48/ferplus/baseline/s0/fit/checkpoints/best-epoch04-acc0.7746.ckpt

Writes ``benchmarks/results/cross_dataset/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.paths import RESULTS
from fer_zoo.datasets.ferplus import FERPlus
from fer_zoo.labels import CLASSES

#: folder names a user would pick (every one goes through fer_zoo.labels' synonyms)
USER_FOLDERS = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprised",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
}


def write_folder(root: Path, out: Path) -> dict[str, int]:
    """Link (or copy) FERPlus test images into ``out/<user folder>/``; returns images per folder."""
    test = FERPlus(root, "test")
    counts: dict[str, int] = {}
    for path, label in zip(test.manifest.files, test.labels):
        folder = USER_FOLDERS.get(CLASSES["ferplus"][label])
        if folder is None:
            continue
        target = out / folder / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            try:
                os.link(path, target)
            except OSError:
                shutil.copy(path, target)
        counts[folder] = counts.get(folder, 0) + 1
    return counts


def fer_zoo_test(args: list[str], run_dir: Path) -> dict:
    """Run ``fer-zoo test`` in its own process; return its test report."""
    cmd = [sys.executable, "-m", "fer_zoo", "test", *args, "--trainer.accelerator", "cpu", "--wandb", "disabled",
           "--run_dir", str(run_dir)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((run_dir / "test_report.json").read_text())


def main(argv: list[str] | None = None) -> None:
    """Write the folder, test on it and on FERPlus, tabulate."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="FERPlus root")
    p.add_argument("--ckpt", required=True, help="a FERPlus-trained checkpoint")
    p.add_argument("--work", default="runs/cross-dataset", help="scratch folder (the tree and the test runs)")
    p.add_argument("--out", default=str(RESULTS / "cross_dataset" / "README.md"))
    a = p.parse_args(argv)
    work = Path(a.work)
    counts = write_folder(Path(a.root), work / "ferplus_test_as_folders")
    folder = fer_zoo_test(
        ["--data", "imagefolder", "--data.root", str(work / "ferplus_test_as_folders"), "--data.cache_side", "48",
         "--ckpt_path", a.ckpt],
        work / "test-imagefolder",
    )
    native = fer_zoo_test(["--data", "ferplus", "--data.root", a.root, "--ckpt_path", a.ckpt], work / "test-ferplus")
    cross = folder["cross_dataset"]
    names = native["class_names"]
    shared = [names.index(c) for c in cross["shared"]]
    cm = native["confusion_matrix"]
    # FERPlus' own test restricted to the folder's classes, argmax over all 8 classes, by hand
    hits = sum(cm[i][i] for i in shared)
    total = sum(sum(cm[i]) for i in shared)
    lines = [
        "# Cross-dataset evaluation: a FERPlus model on a labelled folder",
        "",
        "```",
        f"python -m benchmarks.studies.cross_dataset --root {a.root} --ckpt {a.ckpt}",
        "```",
        "",
        f"Folder: the FERPlus test images written as `{', '.join(f'{k}/ ({v})' for k, v in sorted(counts.items()))}`"
        f" (no `contempt/`). The model ({native.get('model')}, FERPlus-trained) has {len(names)} classes; the "
        f"folder has {len(cross['shared'])} of them; left out of the folder's classes: {cross['left_out'] or 'none'}.",
        "",
        "| evaluation | images | OA | MCA | macro-F1 |",
        "|---|---:|---:|---:|---:|",
        f"| `fer-zoo test --data ferplus` (all 8 classes) | {sum(map(sum, cm))} | {native['test/acc']:.4f} | "
        f"{native['test/mca']:.4f} | {native['test/f1_macro']:.4f} |",
        f"| same, restricted by hand to the folder's 7 classes, argmax over 8 | {total} | {hits / total:.4f} | | |",
    ]
    for mode, key in (("all model classes", "argmax_all_classes"), ("the folder's classes", "argmax_shared_classes")):
        s = cross[key]
        lines.append(
            f"| `--data imagefolder`, argmax over {mode} | {sum(map(sum, folder['confusion_matrix']))} | "
            f"{s['acc']:.4f} | {s['mca']:.4f} | {s['f1_macro']:.4f} |"
        )
    lines += [
        "",
        "The folder is packed at FERPlus' own 48 px (`--data.cache_side 48`), so the imagefolder rows see the same",
        "pixels as `--data ferplus` and the all-classes row must equal the hand-restricted one.",
    ]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
