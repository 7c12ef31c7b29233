"""AffectNet (manually annotated part) in its original release layout."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_zoo.datasets.base import FERDataset, Manifest, PathArray, holdout
from fer_zoo.datasets.errors import DatasetNotFoundError, LabelError
from fer_zoo.errors import OptionError

LISTS = Path("Manually_Annotated_file_lists")
IMAGES = Path("Manually_Annotated_Images")
# The release archive unpacks its images one level deeper: Manually_Annotated/Manually_Annotated_Images/
RELEASE_IMAGES = Path("Manually_Annotated") / IMAGES
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
  <root>/Manually_Annotated_Images/<subdir>/<file>.jpg
  (or <root>/Manually_Annotated/Manually_Annotated_Images/..., as the release archive unpacks)"""
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


def parse_landmark_column(texts: pd.Series, lines: np.ndarray, path: Path) -> np.ndarray:
    """Parse a column of landmark strings into ``(N, 68, 2)`` float32 in one pass.

    The strings are joined and read by numpy's text parser, so no Python object is made per
    number (AffectNet: 39 M numbers). When the count is off, the rows are parsed one by one
    by :func:`parse_landmarks` to name the first bad line.
    """
    n = len(texts)
    if n == 0:
        return np.zeros((0, NUM_LANDMARKS, 2), np.float32)
    values = None
    if not texts.isna().any():
        cleaned = texts.str.strip().str.strip(";")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)  # older numpy only warns at a bad number
                values = np.fromstring(";".join(cleaned), sep=";", dtype=np.float64)
        except (ValueError, DeprecationWarning):
            values = None
        if values is not None and (
            values.size != n * 2 * NUM_LANDMARKS or (cleaned.str.count(";") != 2 * NUM_LANDMARKS - 1).any()
        ):
            values = None
    if values is None:  # something is off: the row parser names the first bad line
        return np.stack([parse_landmarks(t, path, int(i)) for t, i in zip(texts, lines)]).astype(np.float32)
    return values.astype(np.float32).reshape(n, NUM_LANDMARKS, 2)


class AffectNet(FERDataset):
    """AffectNet, 7-class (Contempt dropped) or 8-class protocol, face-box crops with 68 landmarks.

    Layout (original release)::

        <root>/Manually_Annotated_file_lists/{training,validation}.csv
        <root>/Manually_Annotated_Images/<subDirectory_filePath>
        (or <root>/Manually_Annotated/Manually_Annotated_Images/..., the release archive's own folder)

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
            raise OptionError(f"affectnet: num_classes must be 7 or 8, got {num_classes}")
        self.name = f"affectnet{num_classes}"
        self.num_classes, self.val_fraction, self.split_seed = num_classes, val_fraction, split_seed
        super().__init__(root, split, **kwargs)

    def csv_path(self, split: str) -> Path:
        """The CSV a split reads: ``validation.csv`` for test, ``training.csv`` for train and val."""
        return self.root / LISTS / CSV_FILES["test" if split == "test" else "train"]

    @property
    def images_dir(self) -> Path:
        """``Manually_Annotated_Images/`` under the root, or under ``Manually_Annotated/`` as the archive unpacks."""
        nested = self.root / RELEASE_IMAGES
        return nested if not (self.root / IMAGES).exists() and nested.is_dir() else self.root / IMAGES

    def index_sources(self, split: str) -> list[Path]:
        """The split's CSV: its parsed rows are cached as memory-mapped arrays (287 k rows in full)."""
        return [self.csv_path(split)]

    def index_params(self, split: str) -> dict[str, Any]:
        """The protocol and the validation hold-out change the parsed rows."""
        return {**super().index_params(split), "classes": self.num_classes, "val": self.val_fraction,
                "seed": self.split_seed, "images": str(self.images_dir)}

    def load_manifest(self, split: str) -> Manifest:
        """Parse the split's CSV, drop the rows the protocol excludes, and map landmarks into the crop.

        The CSV is read in chunks of :attr:`chunk_rows` rows: only one chunk's strings (a landmark
        string is ~700 B) are alive at a time, so the parser's heap does not grow with the file.
        """
        csv_path = self.csv_path(split)
        for required in (csv_path, self.images_dir):
            if not required.exists():
                raise DatasetNotFoundError("affectnet", self.root, required, LAYOUT)
        summary = {f"dropped_expression_{i}": 0 for i in (8, 9, 10)}
        summary["dropped_negative_face_width"] = 0
        if self.num_classes == 7:
            summary["dropped_contempt"] = 0
        parts: dict[str, list[np.ndarray]] = {"labels": [], "boxes": [], "landmarks": [], "files": []}
        chunks = pd.read_csv(
            csv_path, dtype={"subDirectory_filePath": str, "facial_landmarks": str}, chunksize=self.chunk_rows
        )
        first_line = 2  # the header is line 1
        for table in chunks:
            for name, values in self._parse_chunk(table, first_line, csv_path, summary).items():
                parts[name].append(values)
            first_line += len(table)
        labels, boxes, landmarks, files = (
            np.concatenate(parts[k]) if parts[k] else empty
            for k, empty in (
                ("labels", np.zeros(0, np.int64)),
                ("boxes", np.zeros((0, 4), np.float32)),
                ("landmarks", np.zeros((0, NUM_LANDMARKS, 2), np.float32)),
                ("files", np.zeros(0, "S1")),
            )
        )
        manifest = Manifest(PathArray(files), labels, landmarks=landmarks, boxes=boxes, summary=summary)
        if split != "test":
            in_val = holdout(labels, self.val_fraction, self.split_seed)
            manifest = manifest.select(in_val if split == "val" else ~in_val)
        manifest.summary["samples"] = len(manifest.files)
        return manifest

    #: CSV rows parsed at a time.
    chunk_rows = 20_000

    def _parse_chunk(self, table: pd.DataFrame, first_line: int, csv_path: Path, summary: dict) -> dict:
        """Validate and convert one chunk of CSV rows (file lines from ``first_line``); counts drops in ``summary``."""
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise LabelError(csv_path, 1, f"missing columns {missing}; expected header {','.join(COLUMNS)}")
        lines = np.arange(len(table)) + first_line
        expression = pd.to_numeric(table["expression"], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(expression) | (expression < 0) | (expression > 10) | (expression != np.round(expression))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise LabelError(
                csv_path, int(lines[first]), f"unknown expression id {table['expression'].iloc[first]!r} (expected 0..10)"
            )
        for i in (8, 9, 10):
            summary[f"dropped_expression_{i}"] += int((expression == i).sum())
        keep = expression < 8
        width = table["face_width"].to_numpy()
        summary["dropped_negative_face_width"] += int((keep & (width < 0)).sum())
        keep &= width >= 0
        if self.num_classes == 7:
            summary["dropped_contempt"] += int((keep & (expression == 7)).sum())
            keep &= expression != 7
        table, lines = table[keep], lines[keep]
        boxes = table[["face_x", "face_y", "face_width", "face_height"]].to_numpy(dtype=np.float32)
        size = np.array(self.cache_size[::-1], dtype=np.float32)  # (w, h)
        landmarks = parse_landmark_column(table["facial_landmarks"], lines, csv_path)
        landmarks = (landmarks - boxes[:, None, :2]) * (size / np.maximum(boxes[:, 2:], 1.0))[:, None, :]
        prefix = os.fsencode(str(self.images_dir)) + b"/"  # one byte string per row, not a Path object
        return {
            "labels": expression[keep].astype(np.int64),
            "boxes": boxes,
            "landmarks": landmarks.astype(np.float32),
            "files": np.array([prefix + os.fsencode(p) for p in table["subDirectory_filePath"]], dtype=bytes),
        }
