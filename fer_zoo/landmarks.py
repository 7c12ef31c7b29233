"""Landmark layouts shared by datasets, augmentation and models.

Layouts: the 68-point iBUG layout, the 19-point AFLW layout (LA-Net), and MediaPipe FaceMesh's
468/478 points (478 with the refined irises). :func:`convert` maps MediaPipe points to 68 or 19
points, :func:`flip_permutation` restores left/right semantics after a mirror, and
:func:`heatmaps` draws Gaussian heatmap targets with LA-Net's weight map.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``,
so a horizontal flip of an image of width W maps ``x`` to ``W - x``. "Right" means the
subject's right, which is image-left.
"""

from __future__ import annotations

import numpy as np
import torch


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
    "jaw": range(17),
    "brow_right": range(17, 22),
    "brow_left": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_base": range(31, 36),
    "eye_right": range(36, 42),
    "eye_left": range(42, 48),
    "lip_outer": range(48, 60),
    "lip_inner": range(60, 68),
}


#: MediaPipe FaceMesh index of each iBUG-68 point (same order as the 68 layout). Symmetric by
#: construction: mirrored 68 points map to mirrored mesh vertices.
MEDIAPIPE_TO_68 = np.array(
    [127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356]  # jaw
    + [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]  # brows (right outer->inner, left inner->outer)
    + [168, 197, 5, 4, 98, 97, 2, 326, 327]  # nose bridge, nose base
    + [33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380]  # eyes
    + [61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91]  # outer lip
    + [78, 82, 13, 312, 308, 317, 14, 87]  # inner lip
)

#: The AFLW-19 layout as groups of 68-point indices (each point is the mean of its group):
#: brows (right outer, centre, inner; left inner, centre, outer), eyes (right outer corner,
#: centre, inner corner; left inner, centre, outer), nose (right wing, tip, left wing),
#: mouth (right corner, centre, left corner), chin.
AFLW19_FROM_68: tuple[tuple[int, ...], ...] = (
    (17,), (19,), (21,), (22,), (24,), (26,),
    (36,), (37, 38, 40, 41), (39,), (42,), (43, 44, 46, 47), (45,),
    (31,), (30,), (35,),
    (48,), (62, 66), (54,),
    (8,),
)  # fmt: skip

#: Iris centres of the refined 478-point mesh (right, left); used for the AFLW eye centres.
MEDIAPIPE_IRIS = (468, 473)

FLIP_19 = np.array([5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 14, 13, 12, 17, 16, 15, 18])


def flip_permutation(num_points: int) -> np.ndarray:
    """Return the left/right index permutation for a layout of ``num_points`` landmarks.

    Raises:
        ValueError: for a layout without a known permutation.
    """
    if num_points == 68:
        return FLIP_68
    if num_points == 19:
        return FLIP_19
    raise ValueError(f"no flip permutation is defined for {num_points} landmarks (known: 68, 19)")


def to_aflw19(points68: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``(..., 68, 2)`` iBUG points to ``(..., 19, 2)`` AFLW points (NumPy array or tensor)."""
    stack = torch.stack if isinstance(points68, torch.Tensor) else np.stack
    return stack([points68[..., list(group), :].mean(-2) for group in AFLW19_FROM_68], -2)


def convert(points: np.ndarray, layout: int) -> np.ndarray:
    """Map MediaPipe ``(..., 468|478, D)`` points, or 68 points, to ``layout`` (68 or 19) points.

    With 478 refined points the AFLW eye centres are the iris centres; otherwise they are the
    mean of the eye contour.
    """
    n = points.shape[-2]
    if layout == n:
        return points
    if n in (468, 478):
        points68 = points[..., MEDIAPIPE_TO_68, :]
    elif n == 68:
        points68 = points
    else:
        raise ValueError(f"cannot map {n} landmarks to {layout} (from 468/478 MediaPipe or 68 iBUG points)")
    if layout == 68:
        return points68
    if layout != 19:
        raise ValueError(f"unknown landmark layout {layout} (68 or 19)")
    out = to_aflw19(points68)
    if n == 478:
        out[..., 7, :] = points[..., MEDIAPIPE_IRIS[0], :]
        out[..., 10, :] = points[..., MEDIAPIPE_IRIS[1], :]
    return out


def heatmaps_torch(
    points: torch.Tensor, size: int, image_size: float, sigma: float = 1.5, weight: float = 10.0, threshold: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian heatmap targets and LA-Net's weight map for ``(..., K, 2)`` pixel landmarks.

    Args:
        points: landmarks in pixels of an image of ``image_size`` pixels (square).
        size: heatmap side (LA-Net: 56 for a 224 input, stride 4).
        image_size: side of the image the points refer to.
        sigma: Gaussian std in heatmap pixels (LA-Net: 1.5).
        weight: weight where the 3x3-dilated heatmap exceeds ``threshold`` (elsewhere 1).
        threshold: see ``weight``.

    Returns:
        ``(heatmaps, weights)``, both ``(..., K, size, size)``. A point outside the map gives an
        all-zero heatmap.
    """
    stride = image_size / size
    # LA-Net centres the Gaussian on round(p / stride + 0.5) on a grid of pixel indices; with
    # continuous coordinates the cell holding p / stride is the same point.
    centres = torch.floor(points.float() / stride)
    grid = torch.arange(size, dtype=torch.float32, device=points.device)
    gx = torch.exp(-((grid - centres[..., :1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((grid - centres[..., 1:]) ** 2) / (2 * sigma**2))
    maps = gy.unsqueeze(-1) * gx.unsqueeze(-2)
    inside = ((centres >= 0) & (centres < size)).all(-1)
    maps = maps * inside[..., None, None]
    flat = maps.reshape(-1, 1, size, size)
    dilated = torch.nn.functional.max_pool2d(flat, 3, stride=1, padding=1).reshape(maps.shape)
    weights = torch.where(dilated > threshold, torch.full_like(maps, weight), torch.ones_like(maps))
    return maps, weights


def heatmaps(points: np.ndarray, size: int, image_size: float, **kwargs: float) -> tuple[np.ndarray, np.ndarray]:
    """NumPy front end of :func:`heatmaps_torch` (float32 arrays)."""
    maps, weights = heatmaps_torch(torch.as_tensor(np.asarray(points, np.float32)), size, image_size, **kwargs)
    return maps.numpy(), weights.numpy()


def hflip_landmarks(points: np.ndarray, width: float) -> np.ndarray:
    """Mirror ``(K, 2)`` landmarks for an image of ``width`` pixels and restore left/right order."""
    flipped = points.copy()
    flipped[:, 0] = width - flipped[:, 0]
    return flipped[flip_permutation(len(points))]
