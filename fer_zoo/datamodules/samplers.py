"""Samplers for imbalanced FER data (AffectNet, FERPlus).

Both are plain ``Sampler``s: under DDP Lightning wraps them in its
``DistributedSamplerWrapper``, so every rank draws the same sequence and takes its share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

SAMPLERS = ("none", "class_balanced", "progressive")


def class_balanced_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-sample weights ``1 / n_class`` (each class drawn equally often); empty classes get none."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return 1.0 / np.maximum(counts[labels], 1.0)


class ProgressivelyBalancedSampler(Sampler[int]):
    """Draw with class probabilities moving from instance-balanced to class-balanced.

    At epoch ``t`` of ``T`` the probability of class ``j`` is
    ``(1 - t/T) * n_j / N + (t/T) * 1 / C`` (progressively balanced sampling, as LA-Net uses);
    with ``T = 0`` it is class-balanced from the start. Draws are with replacement,
    ``len(labels)`` per epoch, seeded by ``(seed, epoch)`` so all DDP ranks agree.
    """

    def __init__(
        self,
        labels: np.ndarray,
        num_classes: int,
        total_epochs: int = 0,
        seed: int = 0,
        epoch_fn: Callable[[], int] | None = None,
    ) -> None:
        """Configure the sampler.

        Args:
            labels: the training labels.
            num_classes: number of classes.
            total_epochs: epochs over which to move to class-balanced (0: class-balanced now).
            seed: base seed.
            epoch_fn: returns the current epoch (the data module passes the trainer's);
                otherwise :meth:`set_epoch` is used.
        """
        self.labels = np.asarray(labels)
        self.num_classes, self.total_epochs, self.seed = num_classes, total_epochs, seed
        self.epoch_fn, self.epoch = epoch_fn, 0
        self.counts = np.bincount(self.labels, minlength=num_classes).astype(np.float64)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch used when no ``epoch_fn`` is given."""
        self.epoch = epoch

    def class_probabilities(self, epoch: int) -> np.ndarray:
        """The class probabilities at ``epoch``."""
        instance = self.counts / self.counts.sum()
        present = self.counts > 0
        balanced = present / present.sum()
        t = 1.0 if self.total_epochs <= 0 else min(epoch / self.total_epochs, 1.0)
        return (1 - t) * instance + t * balanced

    def __iter__(self) -> Iterator[int]:
        """Yield ``len(labels)`` indices for this epoch."""
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        probs = self.class_probabilities(epoch)
        weights = probs[self.labels] / np.maximum(self.counts[self.labels], 1.0)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        yield from torch.multinomial(torch.as_tensor(weights), len(self.labels), True, generator=generator).tolist()

    def __len__(self) -> int:
        """Samples per epoch."""
        return len(self.labels)
