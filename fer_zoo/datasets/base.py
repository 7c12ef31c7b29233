"""The shared base of every FER dataset: an index of samples over a packed image cache."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fer_zoo.datasets.cache import PackedImages
from fer_zoo.labels import class_names

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class Manifest:
    """What a dataset's index parser returns for one split.

    Attributes:
        files: image files in sample order.
        labels: int64 label ids in the dataset's own class order.
        targets: optional float32 ``(N, C)`` soft targets (FERPlus vote distributions).
        landmarks: optional float32 ``(N, K, 2)`` landmarks in pixels of the stored image.
        boxes: optional ``(N, 4)`` face boxes ``(x, y, w, h)`` cropped when packing.
        summary: counts of what the parser dropped and why (nothing is dropped silently).
    """

    files: list[Path]
    labels: np.ndarray
    targets: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    boxes: np.ndarray | None = None
    summary: dict[str, int] = field(default_factory=dict)

    def select(self, keep: np.ndarray) -> Manifest:
        """Return the rows in ``keep`` (indices or a boolean mask)."""
        keep = np.flatnonzero(keep) if keep.dtype == bool else keep
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        return Manifest(
            [self.files[i] for i in keep],
            self.labels[keep],
            pick(self.targets),
            pick(self.landmarks),
            pick(self.boxes),
            dict(self.summary),
        )


def holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Stratified, seeded boolean mask selecting ``fraction`` of each class as a validation split.

    Used where the official release has no validation split (RAF-DB, AffectNet), so that
    model selection never looks at the test split.
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = int(round(fraction * len(idx)))
        mask[rng.permutation(idx)[:n]] = True
    return mask


class FERDataset(Dataset):
    """Base class: parses an index once, packs its images, and serves sample dicts.

    A sample is ``{"image": HxWx3 uint8, "label": int, "index": int}`` plus ``"target"``
    (soft label, float32 ``(C,)``) and ``"landmarks"`` (float32 ``(K, 2)`` pixels) where the
    dataset has them. ``transform`` maps that dict to tensors (see
    :mod:`fer_zoo.transforms`); without one, the image is returned as a float tensor.

    Subclasses set :attr:`name` and implement :meth:`load_manifest`.
    """

    name: str = ""
    #: (height, width) of the packed cache; None for datasets that generate images in memory.
    cache_size: tuple[int, int] | None = (112, 112)
    cache_channels: int = 3

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache_dir: str | Path | None = None,
        skip_corrupt: bool = False,
    ) -> None:
        """Load the index of ``split`` and its packed images.

        Args:
            root: dataset root in the official layout.
            split: ``train``, ``val`` or ``test``.
            transform: maps a sample dict to model inputs.
            cache_dir: where packed images are cached (default ``$FER_ZOO_HOME/cache``).
            skip_corrupt: skip unreadable images and count them in :attr:`summary`
                instead of raising an error that names the first one.
        """
        if split not in SPLITS:
            raise ValueError(f"{self.name}: split must be one of {SPLITS}, got {split!r}")
        self.root, self.split, self.transform = Path(root), split, transform
        self.classes = class_names(self.name)
        manifest = self.load_manifest(split)
        if len(manifest.files) == 0:
            raise ValueError(f"{self.name}: split {split!r} under {self.root} has no samples")
        packed = PackedImages.build(
            manifest.files,
            self.cache_size,
            self.cache_channels,
            manifest.boxes,
            cache_dir=cache_dir,
            name=f"{self.name}-{split}",
            skip_bad=skip_corrupt,
        )
        manifest.summary["unreadable_images"] = len(packed.bad)
        self.unreadable = [str(manifest.files[i]) for i in packed.bad]
        if packed.bad:
            log.warning(
                "%s/%s: skipped %d unreadable image(s), e.g. %s", self.name, split, len(packed.bad), self.unreadable[:3]
            )
        keep = np.setdiff1d(np.arange(len(manifest.files)), packed.bad)
        self.rows = keep  # rows of the packed array that are served, in sample order
        self.images = packed.array
        self.manifest = manifest.select(keep)
        self.summary = self.manifest.summary

    def load_manifest(self, split: str) -> Manifest:
        """Parse the official index files of ``split``."""
        raise NotImplementedError

    @property
    def labels(self) -> np.ndarray:
        """Hard label ids, in the dataset's class order."""
        return self.manifest.labels

    @property
    def has_landmarks(self) -> bool:
        """Whether samples carry landmarks."""
        return self.manifest.landmarks is not None

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.manifest.labels)

    def image(self, index: int) -> np.ndarray:
        """The stored image of sample ``index`` as ``(H, W, 3)`` uint8."""
        image = np.array(self.images[self.rows[index]])  # a writable copy of the memmap row
        return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return the sample dict of ``index``, transformed."""
        sample: dict[str, Any] = {"image": self.image(index), "label": int(self.manifest.labels[index]), "index": index}
        if self.manifest.targets is not None:
            sample["target"] = self.manifest.targets[index]
        if self.manifest.landmarks is not None:
            sample["landmarks"] = self.manifest.landmarks[index]
        if self.transform is not None:
            return self.transform(sample)
        sample["image"] = torch.from_numpy(sample["image"]).permute(2, 0, 1).float().div(255)
        return sample
