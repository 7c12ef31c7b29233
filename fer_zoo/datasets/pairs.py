"""Anchor/positive pairs for cross-similarity learning (QCS's ``fetch_positive``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class PositivePairs(Dataset):
    """Each sample also carries ``positive_image``: another training image of the same class.

    The positive is drawn uniformly among the other samples with the same label (the sample
    itself when it is alone in its class), freshly at every access, so each epoch sees new pairs.
    The generator is re-seeded from ``seed`` and torch's process seed whenever that changes: a
    DataLoader worker gets ``base_seed + worker_id`` with a new base seed per epoch, so workers
    neither repeat each other nor replay the previous epoch's pairs (a generator copied into
    forked workers would do both).
    """

    def __init__(self, dataset: Any, seed: int = 0) -> None:
        """Wrap ``dataset`` (a :class:`~fer_zoo.datasets.base.FERDataset`)."""
        self.dataset = dataset
        self.seed = seed
        self._process_seed: int | None = None
        self.rng = np.random.default_rng(seed)
        labels = np.asarray(dataset.labels)
        self.members = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}

    @property
    def labels(self) -> np.ndarray:
        """Labels of the wrapped dataset (samplers use them)."""
        return self.dataset.labels

    def __getattr__(self, name: str) -> Any:
        # Everything else (summary, manifest, classes...) is the wrapped dataset's.
        if name in ("dataset", "seed", "_process_seed", "rng", "members"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        """Number of anchors."""
        return len(self.dataset)

    def positive_index(self, index: int) -> int:
        """A random other index of the same class (``index`` itself when the class has one sample)."""
        members = self.members[int(self.dataset.labels[index])]
        if len(members) == 1:
            return index
        process_seed = torch.initial_seed()
        if process_seed != self._process_seed:
            self._process_seed = process_seed
            self.rng = np.random.default_rng([self.seed, process_seed])
        choice = int(members[self.rng.integers(len(members) - 1)])
        return choice if choice != index else int(members[-1])

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The anchor sample plus ``positive_image``, ``positive_index`` (and ``positive_target`` with soft labels)."""
        sample = dict(self.dataset[index])
        positive = self.positive_index(index)
        other = self.dataset[positive]
        sample["positive_image"] = other["image"]
        if "target" in other:  # soft labels (FERPlus vote distributions): the positive keeps its own
            sample["positive_target"] = other["target"]
        sample["positive_index"] = positive
        return sample
