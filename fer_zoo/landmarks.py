"""Landmark layouts shared by datasets, augmentation and models.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``,
so a horizontal flip of an image of width W maps ``x`` to ``W - x``.
"""

from __future__ import annotations

import numpy as np


def _ibug68_flip() -> np.ndarray:
    perm = np.arange(68)
    pairs = [(i, 16 - i) for i in range(8)]  # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
    pairs += [(31, 35), (32, 34)]  # nose base
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lip
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lip
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


#: Index permutation that restores left/right semantics of the 68-point iBUG layout after a flip.
FLIP_68 = _ibug68_flip()

#: Named groups of the 68-point layout (image-left first).
GROUPS_68 = {
    "jaw": range(0, 17),
    "brow_right": range(17, 22),
    "brow_left": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_base": range(31, 36),
    "eye_right": range(36, 42),
    "eye_left": range(42, 48),
    "lip_outer": range(48, 60),
    "lip_inner": range(60, 68),
}


def flip_permutation(num_points: int) -> np.ndarray:
    """Return the left/right index permutation for a layout of ``num_points`` landmarks.

    Raises:
        ValueError: for a layout without a known permutation.
    """
    if num_points == 68:
        return FLIP_68
    raise ValueError(f"no flip permutation is defined for {num_points} landmarks (known: 68)")


def hflip_landmarks(points: np.ndarray, width: float) -> np.ndarray:
    """Mirror ``(K, 2)`` landmarks for an image of ``width`` pixels and restore left/right order."""
    flipped = points.copy()
    flipped[:, 0] = width - flipped[:, 0]
    return flipped[flip_permutation(len(points))]
