"""FERPlus (microsoft/FERPlus) in its official on-disk layout."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from fer_zoo.datasets.base import FERDataset, Manifest
from fer_zoo.datasets.errors import DatasetNotFoundError, LabelError
from fer_zoo.errors import OptionError

FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
LabelMode = Literal["majority", "probability", "crossentropy"]
VoteSource = Literal["fer2013new", "label_csv"]
LABEL_MODES: tuple[str, ...] = get_args(LabelMode)
VOTE_SOURCES: tuple[str, ...] = get_args(VoteSource)
NUM_VOTE_COLUMNS = 10  # 8 emotions, unknown, NF (not a face)
NUM_EMOTIONS = 8

LAYOUT = """  <root>/fer2013new.csv                      (header: Usage,Image name,neutral,...,unknown,NF)
  <root>/FER2013Train/fer0000000.png ...     (48x48 greyscale PNGs; label.csv beside them)
  <root>/FER2013Valid/...  <root>/FER2013Test/..."""


def derive_target(votes: np.ndarray, mode: str) -> np.ndarray | None:
    """Turn one row of 10 vote counts into an 8-class target, as FERPlus's official derivation does.

    Args:
        votes: the 10 vote counts (8 emotions, unknown, NF).
        mode: ``majority`` (one-hot of a > 50% winner) or ``probability`` /
            ``crossentropy`` (the top emotions, at most 3, covering >= 75% of the votes).

    Returns:
        A float32 distribution over the 8 emotions, or None when the sample is discarded
        (no clear winner, or unknown / not-a-face wins or ties the winner).
    """
    votes = np.asarray(votes, dtype=np.float64).copy()
    votes[votes <= 1.0] = 0.0  # a single vote is an outlier
    total = votes.sum()
    if total <= 0:
        return None
    kept = np.zeros_like(votes)
    if mode == "majority":
        winner = int(np.argmax(votes))
        if votes[winner] <= 0.5 * total:
            return None
        kept[winner] = votes[winner]
    elif mode in ("probability", "crossentropy"):
        remaining, covered, count = votes.copy(), 0.0, 0
        while covered < 0.75 * total and count < 3:
            top = remaining.max()
            tied = np.flatnonzero(remaining == top)
            # Classes are taken in column order; unknown/NF tying the top ends the search.
            stop = False
            for i in tied:
                if i >= NUM_EMOTIONS:
                    stop = True
                    break
                kept[i], remaining[i] = top, 0.0
                covered += top
                count += 1
            if stop:
                break
        if kept.sum() <= 0.5 * total or count > 3:
            return None
    else:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {mode!r}")
    if np.argmax(kept) >= NUM_EMOTIONS:
        return None
    emotions = kept[:NUM_EMOTIONS]
    return (emotions / emotions.sum()).astype(np.float32)


def read_votes(root: Path, split: str, source: str) -> tuple[dict[str, np.ndarray], dict[str, int], Path]:
    """Read the vote rows of ``split``; a name that occurs twice keeps its last row.

    The official generator wrote PNGs row by row, so a duplicated name's file on disk is
    the last row's image. Rows with an empty name have no image and are skipped.

    Returns:
        ``(votes by file name, counts of skipped rows, the file read)``.

    Raises:
        LabelError: naming file and line for a malformed row.
    """
    votes: dict[str, np.ndarray] = {}
    empty = duplicates = 0
    if source == "fer2013new":
        path = root / "fer2013new.csv"
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header or header[:2] != ["Usage", "Image name"]:
                raise LabelError(path, 1, f"expected header 'Usage,Image name,neutral,...', got {header}")
            for line, row in enumerate(reader, start=2):
                if len(row) != 2 + NUM_VOTE_COLUMNS or row[0] not in USAGE:
                    raise LabelError(path, line, f"expected Usage in {sorted(USAGE)} and 10 vote counts, got {row}")
                if USAGE[row[0]] != split:
                    continue
                if not row[1].strip():
                    empty += 1
                    continue
                duplicates += row[1].strip() in votes
                votes[row[1].strip()] = _parse_votes(row[2:], path, line)
    elif source == "label_csv":
        path = root / FOLDERS[split] / "label.csv"
        if not path.is_file():
            raise DatasetNotFoundError("ferplus", root, path, LAYOUT)
        with open(path, newline="") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if len(row) != 2 + NUM_VOTE_COLUMNS:
                    raise LabelError(path, line, f"expected name, box and 10 vote counts, got {row}")
                duplicates += row[0].strip() in votes
                votes[row[0].strip()] = _parse_votes(row[2:], path, line)
    else:
        raise ValueError(f"votes must be one of {VOTE_SOURCES}, got {source!r}")
    return votes, {"rows_without_image": empty, "duplicate_rows_last_kept": duplicates}, path


def _parse_votes(cells: list[str], path: Path, line: int) -> np.ndarray:
    try:
        values = np.array([float(c) for c in cells], dtype=np.float32)
    except ValueError:
        raise LabelError(path, line, f"vote counts must be numbers, got {cells}") from None
    if (values < 0).any():
        raise LabelError(path, line, f"vote counts must be >= 0, got {cells}")
    return values


class FERPlus(FERDataset):
    """FERPlus: FER2013 images (48x48 greyscale) with 10-annotator labels over 8 classes.

    Layout (official, ``microsoft/FERPlus``)::

        <root>/fer2013new.csv
        <root>/FER2013Train/*.png  label.csv
        <root>/FER2013Valid/*.png  label.csv
        <root>/FER2013Test/*.png   label.csv

    Label derivation follows the official ``_process_data``: votes <= 1 are removed;
    ``majority`` keeps a > 50% winner; ``probability`` and ``crossentropy`` keep the top
    (<= 3) emotions covering >= 75% of the votes; samples whose winner is unknown or NF
    are dropped (and counted in :attr:`summary`). Validation and test always use
    ``majority``. In ``probability`` mode a hard label is sampled from the distribution
    each time a training sample is read; ``crossentropy`` also returns the soft ``target``.
    """

    name = "ferplus"
    cache_size = (48, 48)
    cache_channels = 1

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        label_mode: LabelMode = "majority",
        votes: VoteSource = "fer2013new",
        **kwargs: Any,
    ) -> None:
        """Read FERPlus.

        Args:
            root: the folder holding ``fer2013new.csv`` and ``FER2013{Train,Valid,Test}``.
            split: ``train``, ``val`` or ``test``.
            label_mode: ``majority``, ``probability`` or ``crossentropy`` (train split only).
            votes: ``fer2013new`` (the official vote file, default) or ``label_csv`` (the
                per-folder ``label.csv`` files).
            **kwargs: passed to :class:`FERDataset` (transform, cache_dir, skip_corrupt).
        """
        if label_mode not in LABEL_MODES:
            raise OptionError(f"ferplus: label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
        if votes not in VOTE_SOURCES:
            raise OptionError(f"ferplus: votes must be one of {VOTE_SOURCES}, got {votes!r}")
        self.label_mode = label_mode if split == "train" else "majority"
        self.votes = votes
        super().__init__(root, split, **kwargs)

    @property
    def image_options(self) -> dict[str, Any]:
        """The label mode and vote source when they are not the defaults: both decide which faces are kept."""
        options: dict[str, Any] = {}
        if self.label_mode != "majority":
            options["label_mode"] = self.label_mode
        if self.votes != "fer2013new":
            options["votes"] = self.votes
        return options

    def load_manifest(self, split: str) -> Manifest:
        """Parse the votes of ``split`` and derive labels."""
        folder = self.root / FOLDERS[split]
        for required in (self.root / "fer2013new.csv" if self.votes == "fer2013new" else folder / "label.csv", folder):
            if not required.exists():
                raise DatasetNotFoundError("ferplus", self.root, required, LAYOUT)
        votes, skipped, _ = read_votes(self.root, split, self.votes)
        files, labels, targets = [], [], []
        dropped = 0
        for name, row in votes.items():
            target = derive_target(row, self.label_mode)
            if target is None:
                dropped += 1
                continue
            files.append(folder / name)
            labels.append(int(np.argmax(target)))
            targets.append(target)
        summary = {**skipped, "dropped_unknown_or_ambiguous": dropped, "samples": len(files)}
        soft = np.stack(targets) if self.label_mode != "majority" else None
        return Manifest(files, np.asarray(labels, dtype=np.int64), soft, summary=summary)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return a sample; in ``probability`` mode its label is drawn from the vote distribution."""
        sample = super().__getitem__(index)
        if self.label_mode == "probability":
            target = torch.as_tensor(self.manifest.targets[index])
            sample["label"] = int(torch.multinomial(target, 1))
            sample.pop("target", None)
        return sample
