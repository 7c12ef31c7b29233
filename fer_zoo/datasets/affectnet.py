"""AffectNet (manually annotated part) in its original release layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_zoo.datasets.base import FERDataset, Manifest, holdout
from fer_zoo.datasets.errors import DatasetNotFoundError, LabelError

LISTS = Path("Manually_Annotated_file_lists")
IMAGES = Path("Manually_Annotated_Images")
CSV_FILES = {"train": "training.csv", "test": "validation.csv"}
COLUMNS = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]
LAYOUT = """  <root>/Manually_Annotated_file_lists/training.csv, validation.csv
      (header: subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal)
  <root>/Manually_Annotated_Images/<subdir>/<file>.jpg"""
NUM_LANDMARKS = 68


def parse_landmarks(text: Any, path: Path, line: int) -> np.ndarray:
    """Parse AffectNet's ``x;y;x;y;...`` string of 68 points.

    Raises:
        LabelError: naming file and line when the field is missing or not 136 numbers.
    """
    if not isinstance(text, str) or not text.strip():
        raise LabelError(path, line, "facial_landmarks is empty (68 'x;y' pairs expected)")
    try:
        values = np.array([float(v) for v in text.strip().split(";") if v != ""], dtype=np.float32)
    except ValueError:
        raise LabelError(path, line, f"facial_landmarks must be ';'-separated numbers, got {text[:60]!r}") from None
    if values.size != 2 * NUM_LANDMARKS:
        raise LabelError(path, line, f"facial_landmarks has {values.size} numbers, expected {2 * NUM_LANDMARKS}")
    return values.reshape(NUM_LANDMARKS, 2)


class AffectNet(FERDataset):
    """AffectNet, 7-class (Contempt dropped) or 8-class protocol, face-box crops with 68 landmarks.

    Layout (original release)::

        <root>/Manually_Annotated_file_lists/{training,validation}.csv
        <root>/Manually_Annotated_Images/<subDirectory_filePath>

    The official test set is unreleased: ``test`` is ``validation.csv``, and ``val`` is a
    stratified ``val_fraction`` held out from ``training.csv`` so selection never uses it.
    Rows with expression >= 8 (None, Uncertain, Non-Face), a negative face width, or
    (7-class) Contempt are dropped and counted in :attr:`summary`. Each image is cropped to
    its face box and resized to :attr:`cache_size`; landmarks are mapped into that crop.
    """

    name = "affectnet8"
    cache_size = (112, 112)

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        num_classes: int = 8,
        val_fraction: float = 0.05,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        """Read AffectNet.

        Args:
            root: the folder holding ``Manually_Annotated_file_lists/`` and ``Manually_Annotated_Images/``.
            split: ``train``, ``val`` (held out from training.csv) or ``test`` (validation.csv).
            num_classes: 7 or 8 (the protocol).
            val_fraction: fraction of each class of training.csv held out for validation.
            split_seed: seed of that hold-out.
            **kwargs: passed to :class:`FERDataset`.
        """
        if num_classes not in (7, 8):
            raise ValueError(f"affectnet: num_classes must be 7 or 8, got {num_classes}")
        self.name = f"affectnet{num_classes}"
        self.num_classes, self.val_fraction, self.split_seed = num_classes, val_fraction, split_seed
        super().__init__(root, split, **kwargs)

    def load_manifest(self, split: str) -> Manifest:
        """Parse the split's CSV, drop the rows the protocol excludes, and map landmarks into the crop."""
        csv_path = self.root / LISTS / CSV_FILES["test" if split == "test" else "train"]
        for required in (csv_path, self.root / IMAGES):
            if not required.exists():
                raise DatasetNotFoundError("affectnet", self.root, required, LAYOUT)
        table = pd.read_csv(csv_path, dtype={"subDirectory_filePath": str, "facial_landmarks": str})
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise LabelError(csv_path, 1, f"missing columns {missing}; expected header {','.join(COLUMNS)}")
        table["line"] = np.arange(len(table)) + 2  # header is line 1
        expression = pd.to_numeric(table["expression"], errors="coerce")
        bad = expression.isna() | (expression < 0) | (expression > 10) | (expression != expression.round())
        if bad.any():
            row = table[bad].iloc[0]
            raise LabelError(
                csv_path, int(row["line"]), f"unknown expression id {row['expression']!r} (expected 0..10)"
            )
        summary = {f"dropped_expression_{i}": int((expression == i).sum()) for i in (8, 9, 10)}
        keep = expression < 8
        summary["dropped_negative_face_width"] = int((keep & (table["face_width"] < 0)).sum())
        keep &= table["face_width"] >= 0
        if self.num_classes == 7:
            summary["dropped_contempt"] = int((keep & (expression == 7)).sum())
            keep &= expression != 7
        table, labels = table[keep].reset_index(drop=True), expression[keep].to_numpy(dtype=np.int64)

        boxes = table[["face_x", "face_y", "face_width", "face_height"]].to_numpy(dtype=np.float32)
        size = np.array(self.cache_size[::-1], dtype=np.float32)  # (w, h)
        landmarks = (
            np.stack([parse_landmarks(t, csv_path, int(n)) for t, n in zip(table["facial_landmarks"], table["line"])])
            if len(table)
            else np.zeros((0, 68, 2))
        )
        landmarks = (landmarks - boxes[:, None, :2]) * (size / np.maximum(boxes[:, 2:], 1.0))[:, None, :]
        files = [self.root / IMAGES / p for p in table["subDirectory_filePath"]]
        manifest = Manifest(files, labels, landmarks=landmarks.astype(np.float32), boxes=boxes, summary=summary)
        if split != "test":
            in_val = holdout(labels, self.val_fraction, self.split_seed)
            manifest = manifest.select(in_val if split == "val" else ~in_val)
        manifest.summary["samples"] = len(manifest.files)
        return manifest
