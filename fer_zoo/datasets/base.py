"""The shared base of every FER dataset: an index of samples over a packed image cache."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from fer_zoo.datasets.cache import PackedImages, cached_index
from fer_zoo.errors import OptionError
from fer_zoo.labels import class_names, index_map

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class PathArray(Sequence):
    """File paths stored as one numpy byte-string array (no Python object per sample).

    Indexing with an int gives a :class:`~pathlib.Path`; with an index array or mask, another
    ``PathArray``. A dataset keeps its file list this way once its images are packed, so memory does not
    grow by a Python object per sample (AffectNet: 190 k paths in ~13 MB instead of ~90 MB of ``Path``s).
    """

    def __init__(self, paths: Sequence[str | Path] | np.ndarray) -> None:
        self.data = paths if isinstance(paths, np.ndarray) else np.array([os.fsencode(str(p)) for p in paths])
        if self.data.size == 0:
            self.data = np.zeros(0, dtype="S1")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return Path(os.fsdecode(self.data[index]))
        return PathArray(self.data[index])

    def __iter__(self):
        return (Path(os.fsdecode(b)) for b in self.data)


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

    files: list[Path] | PathArray
    labels: np.ndarray
    targets: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    boxes: np.ndarray | None = None
    summary: dict[str, int] = field(default_factory=dict)

    def select(self, keep: np.ndarray) -> Manifest:
        """Return the rows in ``keep`` (indices or a boolean mask)."""
        keep = np.flatnonzero(keep) if keep.dtype == bool else keep
        if len(keep) == len(self.labels) and np.array_equal(keep, np.arange(len(keep))):
            # Everything, in order: share the arrays (they may be memory-mapped) instead of copying.
            return Manifest(self.files, self.labels, self.targets, self.landmarks, self.boxes, dict(self.summary))
        pick = lambda a: None if a is None else a[keep]
        return Manifest(
            self.files[keep] if isinstance(self.files, PathArray) else [self.files[i] for i in keep],
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


LANDMARK_SOURCES = ("dataset", "mediapipe", "none")


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
            raise OptionError(f"{self.name}: split must be one of {SPLITS}, got {split!r}")
        self.root, self.split, self.transform = Path(root), split, transform
        self.classes = self.class_order()
        manifest = self._load_manifest_cached(split, cache_dir)
        if len(manifest.files) == 0:
            raise OptionError(f"{self.name}: split {split!r} under {self.root} has no samples")
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
        self.packed_path: Path | None = packed.path
        self.manifest = manifest.select(keep)
        if not isinstance(self.manifest.files, PathArray):
            self.manifest.files = PathArray(self.manifest.files)  # no Python object per sample from here on
        self.summary = self.manifest.summary

    def use_landmarks(self, source: str = "dataset", layout: int = 68) -> None:
        """Choose the landmarks samples carry, in the ``layout`` (68 or 19 points).

        Args:
            source: ``dataset`` (the dataset's own points: AffectNet's 68, the synthetic set's
                exact 68; none for FERPlus and RAF-DB), ``mediapipe`` (the cache written by
                ``fer-zoo landmarks``; images without a face get the mean-shape fallback and
                ``landmark_found = False``) or ``none``.
            layout: 68 (iBUG) or 19 (AFLW, LA-Net).

        Raises:
            FileNotFoundError: for ``mediapipe`` when the cache is missing, naming the command to run.
        """
        from fer_zoo.datasets import mediapipe_landmarks as mpl
        from fer_zoo.landmarks import convert

        if source not in LANDMARK_SOURCES:
            raise OptionError(f"data.landmarks must be one of {LANDMARK_SOURCES}, got {source!r}")
        self.landmark_found = None
        if source == "none":
            self.manifest.landmarks = None
            return
        if source == "mediapipe":
            if self.packed_path is None:
                raise ValueError(f"{self.name}: MediaPipe landmarks need a packed on-disk dataset")
            path = mpl.cache_path(self.packed_path, mpl.DetectorSettings())
            if not path.is_file():
                options = " ".join(f"{k}={v}" for k, v in self.image_options.items())
                raise FileNotFoundError(
                    f"{self.name}/{self.split}: no MediaPipe landmark cache ({path}); run "
                    f"`fer-zoo landmarks --data {self.name} --data.root {self.root}"
                    + (f" --data_options {options}" if options else "")
                    + "` first"
                )
            cache = mpl.LandmarkCache.load(path)
            points = cache.filled(tuple(self.images.shape[1:3]))[self.rows, :, :2]
            self.manifest.landmarks = convert(points, layout).astype(np.float32)
            self.landmark_found = cache.found[self.rows]
            self.summary["landmarks_found"] = f"{self.landmark_found.mean():.1%}"
            return
        if self.manifest.landmarks is not None:
            self.manifest.landmarks = convert(self.manifest.landmarks, layout).astype(np.float32, copy=False)

    def subsample(self, fraction: float, seed: int = 0) -> None:
        """Keep a stratified, seeded ``fraction`` of every class (budget-limited studies).

        Uses the same per-class draw as :func:`holdout`, so a given ``(fraction, seed)`` keeps
        the same images in every run and on every rank. Recorded in :attr:`summary`.
        """
        if not 0.0 < fraction <= 1.0:
            raise OptionError(f"{self.name}/{self.split}: subset fraction must be in (0, 1], got {fraction}")
        if fraction == 1.0:
            return
        before = len(self)
        keep = self._keep(holdout(self.manifest.labels, fraction, seed))
        self.summary["subset"] = f"{len(keep)}/{before} (fraction {fraction}, seed {seed})"

    def restrict_to(self, classes: list[str] | tuple[str, ...]) -> list[str]:
        """Keep the samples of the classes in ``classes`` and relabel them in that order.

        For evaluating a model trained on another dataset: label ids become ids of ``classes``
        (the model's), samples of classes the model lacks are dropped, and soft targets (in this
        dataset's class space) are dropped. Recorded in :attr:`summary`.

        Returns:
            This dataset's classes that ``classes`` lacks (their samples were left out).
        """
        mapping = index_map(self.classes, classes)
        left_out = [name for name, target in zip(self.classes, mapping) if target < 0]
        before = len(self)
        keep = self._keep(mapping[self.manifest.labels] >= 0)
        self.manifest.labels = mapping[self.manifest.labels]
        self.manifest.targets = None
        self.classes = tuple(classes)
        self.summary["relabelled_to"] = list(classes)
        self.summary["left_out"] = {"classes": left_out, "samples": before - len(keep)}
        return left_out

    def _keep(self, mask: np.ndarray) -> np.ndarray:
        """Keep the samples selected by a boolean ``mask``; returns their indices."""
        keep = np.flatnonzero(mask)
        self.rows = self.rows[keep]
        self.manifest = self.manifest.select(keep)
        found = getattr(self, "landmark_found", None)
        if found is not None:
            self.landmark_found = found[keep]
        self.summary = self.manifest.summary
        return keep

    def apply_label_noise(self, rate: float, kind: str = "symmetric", seed: int = 0) -> None:
        """Replace the labels with noisy ones; the clean labels stay in :attr:`clean_labels`.

        Soft targets (FERPlus vote distributions) become the one-hot noisy label, so every
        training signal sees the same noise. See :mod:`fer_zoo.datasets.noise`.
        """
        from fer_zoo.datasets.noise import corrupt_labels

        self.clean_labels = np.asarray(self.manifest.labels).copy()
        noisy = corrupt_labels(self.clean_labels, list(self.classes), rate, kind, seed)
        self.manifest.labels = noisy
        if self.manifest.targets is not None:
            self.manifest.targets = np.eye(len(self.classes), dtype=np.float32)[noisy]
        self.summary["label_noise"] = {
            "type": kind,
            "rate": rate,
            "seed": seed,
            "flipped": int((noisy != self.clean_labels).sum()),
            "realised_rate": round(float((noisy != self.clean_labels).mean()), 4),
        }

    def class_order(self) -> tuple[str, ...]:
        """Class names in label-id order (the official order of :attr:`name`)."""
        return class_names(self.name)

    def load_manifest(self, split: str) -> Manifest:
        """Parse the official index files of ``split``."""
        raise NotImplementedError

    def index_sources(self, split: str) -> list[Path]:
        """Index files :meth:`load_manifest` parses, for datasets whose parsed index is worth caching.

        A subclass returning files here gets its manifest cached as memory-mapped arrays
        (:func:`~fer_zoo.datasets.cache.cached_index`), keyed by these files and
        :meth:`index_params`; the default (empty) parses every time.
        """
        return []

    def index_params(self, split: str) -> dict[str, Any]:
        """Every option that changes what :meth:`load_manifest` returns for ``split``."""
        return {"dataset": self.name, "split": split, "root": str(self.root.resolve()), "size": self.cache_size}

    def _load_manifest_cached(self, split: str, cache_dir: str | Path | None) -> Manifest:
        sources = self.index_sources(split)
        if not sources:
            return self.load_manifest(split)

        def parse() -> tuple[dict[str, Any], dict]:
            manifest = self.load_manifest(split)
            files = manifest.files if isinstance(manifest.files, PathArray) else PathArray(manifest.files)
            arrays = {k: getattr(manifest, k) for k in ("labels", "targets", "landmarks", "boxes")}
            return {"files": files.data, **arrays}, manifest.summary

        arrays, summary = cached_index(
            sources, self.index_params(split), parse, cache_dir=cache_dir, name=f"{self.name}-{split}-index"
        )
        files = arrays.pop("files")
        return Manifest(PathArray(files), **arrays, summary=dict(summary))

    @property
    def labels(self) -> np.ndarray:
        """Hard label ids, in the dataset's class order."""
        return self.manifest.labels

    @property
    def image_options(self) -> dict[str, Any]:
        """Options, other than the root, that choose which images this split packs (as ``KEY: value``)."""
        return {}

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
        # Copies: the arrays may be read-only memory maps, and transforms may write in place.
        if self.manifest.targets is not None:
            sample["target"] = np.array(self.manifest.targets[index])
        if self.manifest.landmarks is not None:
            sample["landmarks"] = np.array(self.manifest.landmarks[index])
            found = getattr(self, "landmark_found", None)
            sample["landmark_found"] = bool(found[index]) if found is not None else True
        if self.transform is not None:
            return self.transform(sample)
        sample["image"] = torch.from_numpy(sample["image"]).permute(2, 0, 1).float().div(255)
        return sample
