"""Samplers for imbalanced FER data (AffectNet, FERPlus).

Both are plain ``Sampler``s: under DDP Lightning wraps them in its
``DistributedSamplerWrapper``, so every rank draws the same sequence and takes its share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import Sampler

SAMPLERS = ("none", "class_balanced", "progressive")


def class_balanced_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-sample weights ``1 / n_class`` (each class drawn equally often); empty classes get none."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return 1.0 / np.maximum(counts[labels], 1.0)


def largest_remainder_counts(probabilities: np.ndarray, total: int) -> np.ndarray:
    """Whole counts proportional to ``probabilities`` that add up to ``total``.

    Each class gets ``floor(p * total)``; the draws left over go, one each, to the classes with
    the largest fractional parts (ties to the lower class index).
    """
    exact = np.asarray(probabilities, dtype=np.float64) * total
    counts = np.floor(exact + 1e-9).astype(np.int64)
    short = int(total - counts.sum())
    if short > 0:
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


class ProgressivelyBalancedSampler(Sampler[int]):
    """Exact per-class quotas moving from instance-balanced to class-balanced, without replacement.

    At epoch ``t`` of ``T`` class ``j`` gets the share ``(1 - t/T) * n_j / N + (t/T) / C`` of the
    epoch's ``N`` draws (progressively balanced sampling, as LA-Net's official sampler does); with
    ``T = 0`` it is class-balanced from the start. As in that sampler, the share is turned into an
    exact count ``k_j``; a class with ``k_j <= n_j`` contributes ``k_j`` distinct images, one with
    ``k_j > n_j`` all its images ``k_j // n_j`` times plus ``k_j % n_j`` distinct others; the epoch
    is then shuffled. So at epoch 0 every image is seen exactly once. Counts are rounded by
    largest remainder so they always add up to ``N`` (the official code rounds up all classes but
    the last, which can leave the last with a negative count). Seeded by ``(seed, epoch)``, so all
    DDP ranks draw the same epoch.
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
        self.members = [np.flatnonzero(self.labels == c) for c in range(num_classes)]

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

    def class_quotas(self, epoch: int) -> np.ndarray:
        """How many draws each class gets at ``epoch`` (they add up to ``len(labels)``)."""
        return largest_remainder_counts(self.class_probabilities(epoch), len(self.labels))

    def __iter__(self) -> Iterator[int]:
        """Yield ``len(labels)`` indices for this epoch."""
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        rng = np.random.default_rng([self.seed, epoch])
        chosen = []
        for members, quota in zip(self.members, self.class_quotas(epoch)):
            if quota == 0 or len(members) == 0:
                continue
            repeats, rest = divmod(int(quota), len(members))
            chosen += [members] * repeats
            chosen.append(rng.choice(members, rest, replace=False))
        indices = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
        yield from indices[rng.permutation(len(indices))].tolist()

    def __len__(self) -> int:
        """Samples per epoch."""
        return len(self.labels)
