"""RAF-DB (basic emotion subset) in its official on-disk layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_zoo.datasets.base import FERDataset, Manifest, holdout
from fer_zoo.datasets.errors import DatasetNotFoundError, LabelError

LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
IMAGE_DIR = Path("Image") / "aligned"
LAYOUT = """  <root>/EmoLabel/list_patition_label.txt   ('train_00001.jpg 5' per line, ids 1..7)
  <root>/Image/aligned/train_00001_aligned.jpg ...  (100x100 aligned RGB crops)"""


def read_partition_labels(path: Path, num_classes: int = 7) -> list[tuple[str, int, int]]:
    """Parse ``list_patition_label.txt`` into ``(name, label id 0-based, line number)`` rows.

    Raises:
        LabelError: naming file and line for a malformed line, an unknown split prefix or
            a label id outside ``1..num_classes``.
    """
    rows = []
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise LabelError(path, line_no, f"expected '<name> <label>', got {line.strip()!r}")
            name, label = parts
            if not (name.startswith("train_") or name.startswith("test_")):
                raise LabelError(path, line_no, f"name {name!r} must start with 'train_' or 'test_'")
            if not label.isdigit() or not 1 <= int(label) <= num_classes:
                raise LabelError(path, line_no, f"unknown label id {label!r} for {name} (expected 1..{num_classes})")
            rows.append((name, int(label) - 1, line_no))
    return rows


class RAFDB(FERDataset):
    """RAF-DB basic: 7 classes in the official order (1 Surprise ... 7 Neutral, stored 0-based).

    Layout::

        <root>/EmoLabel/list_patition_label.txt
        <root>/Image/aligned/<stem>_aligned.jpg

    The official release has train and test only. ``val`` is a stratified, seeded
    ``val_fraction`` of the training names, and ``train`` is the rest, so selection never
    touches the test split. Set ``val_fraction=0`` to train on all training images (then
    ``val`` is empty and cannot be used).
    """

    name = "rafdb"
    cache_size = (100, 100)
    num_classes = 7

    def __init__(
        self, root: str | Path, split: str = "train", val_fraction: float = 0.1, split_seed: int = 0, **kwargs: Any
    ) -> None:
        """Read RAF-DB.

        Args:
            root: the folder holding ``EmoLabel/`` and ``Image/aligned/``.
            split: ``train``, ``val`` (held out from train) or ``test``.
            val_fraction: fraction of each training class held out for validation.
            split_seed: seed of that hold-out.
            **kwargs: passed to :class:`FERDataset`.
        """
        self.val_fraction, self.split_seed = val_fraction, split_seed
        super().__init__(root, split, **kwargs)

    def load_manifest(self, split: str) -> Manifest:
        """Parse the label file and select the split's rows."""
        label_file = self.root / LABEL_FILE
        if not label_file.is_file():
            raise DatasetNotFoundError(self.name, self.root, label_file, LAYOUT)
        image_dir = self.root / IMAGE_DIR
        if not image_dir.is_dir():
            raise DatasetNotFoundError(self.name, self.root, image_dir, LAYOUT)
        rows = read_partition_labels(label_file, self.num_classes)
        prefix = "test_" if split == "test" else "train_"
        rows = [r for r in rows if r[0].startswith(prefix)]
        files = [image_dir / f"{Path(name).stem}_aligned.jpg" for name, _, _ in rows]
        manifest = Manifest(files, np.array([label for _, label, _ in rows], dtype=np.int64))
        if split != "test":
            in_val = holdout(manifest.labels, self.val_fraction, self.split_seed)
            manifest = manifest.select(in_val if split == "val" else ~in_val)
        manifest.summary["samples"] = len(manifest.files)
        return manifest
