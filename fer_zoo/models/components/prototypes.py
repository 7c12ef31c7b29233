"""Class prototypes: mean frozen features of each class's training images, computed once and cached."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from fer_zoo.weights import home

log = logging.getLogger(__name__)


def select_subset(labels: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of at most ``per_class`` images per class (all when None), drawn with ``seed``."""
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


def prototype_key(*parts: object) -> str:
    """Cache key from the encoder fingerprint and what identifies the images."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(repr(part).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()


@torch.no_grad()
def class_sums(
    encode: Callable[[Tensor], Tensor],
    dataset: Dataset,
    indices: np.ndarray,
    num_classes: int,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Per-class feature sums ``(C, D)`` and counts ``(C,)`` of ``dataset[indices]`` under ``encode``."""
    loader = DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size, num_workers=num_workers)
    sums: Tensor | None = None
    counts = torch.zeros(num_classes, device=device)
    for batch in loader:
        features = encode(batch["image"].to(device)).float()
        labels = batch["label"].to(device)
        if sums is None:
            sums = torch.zeros(num_classes, features.shape[1], device=device)
        sums.index_add_(0, labels, features)
        counts += torch.bincount(labels, minlength=num_classes).float()
    if sums is None:
        raise ValueError("no training images to build class prototypes from")
    return sums, counts


def load_cached(key: str) -> Tensor | None:
    """Prototypes cached under ``key`` in ``$FER_ZOO_HOME/prototypes`` (None when absent or unreadable)."""
    path = home() / "prototypes" / f"{key}.pt"
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        log.warning("prototype cache %s unreadable (%s); recomputing", path, err)
        return None


def save_cached(key: str, prototypes: Tensor) -> Path | None:
    """Write prototypes atomically; a read-only home is only logged."""
    path = home() / "prototypes" / f"{key}.pt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(prototypes.cpu(), tmp)
        tmp.replace(path)
        return path
    except OSError as err:
        log.warning("could not write prototype cache %s: %s", path, err)
        return None
