"""Writers of small fake datasets in the exact official on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FERPLUS_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def _png(path: Path, rng: np.random.Generator, size: int = 48, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if mode == "L" else (size, size, 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(path)


def write_ferplus(root: Path, per_split: int = 8) -> dict[str, int]:
    """FERPlus: fer2013new.csv + FER2013{Train,Valid,Test}/ with label.csv. Returns expected majority counts.

    Includes per split: one row with an empty name, one ambiguous row (dropped), and in train a
    duplicated name whose last row wins.
    """
    rng = np.random.default_rng(0)
    rows, expected, index = [FERPLUS_HEADER], {}, 0
    for usage, folder, split in (
        ("Training", "FER2013Train", "train"),
        ("PublicTest", "FER2013Valid", "val"),
        ("PrivateTest", "FER2013Test", "test"),
    ):
        labels = []
        for i in range(per_split):
            votes = [0] * 10
            votes[i % 8] = 8  # clear majority of class i % 8
            votes[(i + 1) % 8] = 2
            name = f"fer{index:07d}.png"
            index += 1
            rows.append(f"{usage},{name}," + ",".join(map(str, votes)))
            labels.append((name, votes))
            _png(root / folder / name, rng)
        rows.append(f"{usage},," + ",".join(["10"] + ["0"] * 9))  # no image
        amb = f"fer{index:07d}.png"
        index += 1
        rows.append(f"{usage},{amb},4,3,3,0,0,0,0,0,0,0")  # no > 50% winner
        labels.append((amb, [4, 3, 3, 0, 0, 0, 0, 0, 0, 0]))
        _png(root / folder / amb, rng)
        if split == "train":  # a duplicated name: the last row's votes (anger) win
            rows.append(f"{usage},{labels[0][0]},0,0,0,0,9,1,0,0,0,0")
        with open(root / folder / "label.csv", "w") as handle:
            for name, votes in labels:
                handle.write(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)) + "\n")
        expected[split] = per_split
    (root / "fer2013new.csv").write_text("\n".join(rows) + "\n")
    return expected


def write_rafdb(root: Path, train_per_class: int = 4, test_per_class: int = 2) -> None:
    """RAF-DB basic: EmoLabel/list_patition_label.txt + Image/aligned/<stem>_aligned.jpg (100x100 RGB)."""
    rng = np.random.default_rng(1)
    lines = []
    for prefix, per_class, digits in (("train", train_per_class, 5), ("test", test_per_class, 4)):
        n = 0
        for label in range(1, 8):
            for _ in range(per_class):
                n += 1
                stem = f"{prefix}_{n:0{digits}d}"
                lines.append(f"{stem}.jpg {label}")
                path = root / "Image" / "aligned" / f"{stem}_aligned.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)).save(path, quality=90)
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")


def write_affectnet(root: Path, per_class: int = 3, images: str = "Manually_Annotated_Images") -> dict[str, int]:
    """AffectNet: Manually_Annotated_file_lists/{training,validation}.csv + Manually_Annotated_Images/.

    ``images`` is the image folder under ``root`` (the release archive's own is
    ``Manually_Annotated/Manually_Annotated_Images``).

    Each image is 160x120 with the face box (20, 10, 80, 100); landmarks are the box corners and
    centre repeated. Adds one row each with expression 8, 9 and 10 per file.
    """
    rng = np.random.default_rng(2)
    header = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    counts = {}
    for csv_name in ("training.csv", "validation.csv"):
        lines = [header]
        for expression in list(range(8)) * per_class + [8, 9, 10]:
            sub = f"{rng.integers(1, 999)}/{rng.integers(1 << 60):x}.jpg"
            path = root / images / sub
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path)
            points = np.tile([[20, 10], [100, 110], [60, 60], [20, 110]], (17, 1)).astype(float)
            lm = ";".join(f"{v:.2f}" for v in points.reshape(-1))
            lines.append(f"{sub},20,10,80,100,{lm},{expression},0.1,-0.2")
        lists = root / "Manually_Annotated_file_lists"
        lists.mkdir(parents=True, exist_ok=True)
        (lists / csv_name).write_text("\n".join(lines) + "\n")
        counts[csv_name] = 8 * per_class
    return counts


def write_imagefolder(root: Path, counts: dict[str, int], size: int = 40) -> None:
    """A labelled folder tree: ``<root>/<folder>/<i>.png`` with ``counts[folder]`` RGB images each."""
    rng = np.random.default_rng(3)
    for folder, n in counts.items():
        for i in range(n):
            _png(root / folder / f"{i:03d}.png", rng, size, "RGB")
