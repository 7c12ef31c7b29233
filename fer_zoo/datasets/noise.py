"""Synthetic label noise for the noisy-label protocol (LA-Net, section 4.3 of reference/methods.md).

- ``symmetric``: each label is flipped with probability ``rate`` to a uniformly chosen *other*
  class (the official code's ``(y + U{1..C-1}) mod C``).
- ``asymmetric``: each label is flipped with probability ``rate`` to its confusable class:
  anger->disgust, disgust->anger, fear->surprise, happiness->neutral, sadness->neutral,
  surprise->anger, neutral->sadness (the official code's table, by class name, so any class
  order works). FERPlus's contempt, absent from that table, goes to disgust.
"""

from __future__ import annotations

import numpy as np

NOISE_TYPES = ("symmetric", "asymmetric")
ASYMMETRIC = {
    "anger": "disgust",
    "disgust": "anger",
    "fear": "surprise",
    "happiness": "neutral",
    "sadness": "neutral",
    "surprise": "anger",
    "neutral": "sadness",
    "contempt": "disgust",
}


def corrupt_labels(labels: np.ndarray, class_names: list[str], rate: float, kind: str, seed: int) -> np.ndarray:
    """Noisy copy of ``labels``.

    Args:
        labels: clean int labels.
        class_names: names in label order.
        rate: flip probability in [0, 1).
        kind: ``symmetric`` or ``asymmetric``.
        seed: noise seed (independent of the training seed).

    Raises:
        ValueError: naming the option for a bad rate, kind or unmapped class.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"data.label_noise must be in [0, 1), got {rate}")
    if kind not in NOISE_TYPES:
        raise ValueError(f"data.noise_type must be one of {NOISE_TYPES}, got {kind!r}")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng([seed, 1234])
    flip = rng.random(len(labels)) < rate
    noisy = labels.copy()
    num_classes = len(class_names)
    if kind == "symmetric":
        noisy[flip] = (labels[flip] + rng.integers(1, num_classes, size=int(flip.sum()))) % num_classes
    else:
        unknown = [n for n in class_names if n not in ASYMMETRIC]
        if unknown:
            raise ValueError(f"data.noise_type=asymmetric has no target for class(es) {unknown}")
        target = np.array([class_names.index(ASYMMETRIC[n]) for n in class_names])
        noisy[flip] = target[labels[flip]]
    return noisy
