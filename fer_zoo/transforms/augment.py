"""Augmentation that transforms landmarks with the image.

albumentations 2.0.8 (the last MIT release) moves keypoints with every geometric
transform, but a horizontal flip only mirrors coordinates: the point that was the left
eye corner is still labelled left. :class:`FERTransform` therefore does the flip itself
and re-orders the points with the layout's flip permutation. Keypoints are kept when they
leave the image (``remove_invisible=False``) so the landmark array keeps its fixed length.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import torch

from fer_zoo.landmarks import hflip_landmarks

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = ("none", "light", "standard", "strong")


def build_pipeline(image_size: int, augment: str) -> A.Compose:
    """The albumentations pipeline (without flip and normalisation) for one augmentation level.

    Args:
        image_size: output side in pixels.
        augment: ``none`` (resize only), ``light`` (shift/scale/rotate), ``standard`` (+ colour,
            random erasing) or ``strong`` (larger geometry, blur, noise).
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    ops: list[A.BasicTransform] = [A.Resize(image_size, image_size)]
    if augment != "none":
        strong = augment == "strong"
        ops.append(
            A.Affine(
                scale=(0.85, 1.15) if strong else (0.9, 1.1),
                translate_percent=(-0.1, 0.1) if strong else (-0.06, 0.06),
                rotate=(-15, 15) if strong else (-10, 10),
                border_mode=0,
                p=0.8,
            )
        )
    if augment in ("standard", "strong"):
        ops.append(A.RandomBrightnessContrast(0.25, 0.25, p=0.7))
        ops.append(
            A.CoarseDropout(
                num_holes_range=(1, 1), hole_height_range=(0.1, 0.3), hole_width_range=(0.1, 0.3), fill=0, p=0.4
            )
        )
    if augment == "strong":
        ops.append(A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.02, 0.08))], p=0.3))
    return A.Compose(ops, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False))


class FERTransform:
    """Turn a sample dict into model inputs: augment, flip with landmark re-ordering, normalise.

    The output ``image`` is a float tensor ``(3, S, S)`` normalised with ``mean``/``std``;
    ``landmarks`` (when present) are float ``(K, 2)`` pixel coordinates in the output image.
    """

    def __init__(
        self,
        image_size: int = 64,
        augment: str = "none",
        hflip: float = 0.0,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        """Configure the transform.

        Args:
            image_size: output side in pixels.
            augment: augmentation level (see :func:`build_pipeline`).
            hflip: probability of a horizontal flip.
            mean: per-channel normalisation mean (0-1 scale).
            std: per-channel normalisation std.
        """
        self.image_size, self.augment, self.hflip = image_size, augment, hflip
        self.pipeline = build_pipeline(image_size, augment)
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Transform one sample dict (returns a new dict)."""
        out = dict(sample)
        image = sample["image"]
        points = sample.get("landmarks")
        if self.hflip > 0 and np.random.random() < self.hflip:
            image = np.ascontiguousarray(image[:, ::-1])
            if points is not None:
                points = hflip_landmarks(np.asarray(points, dtype=np.float32), image.shape[1])
        keypoints = np.zeros((0, 2), np.float32) if points is None else np.asarray(points, np.float32)
        result = self.pipeline(image=image, keypoints=keypoints)
        tensor = torch.from_numpy(np.ascontiguousarray(result["image"])).permute(2, 0, 1).float().div_(255)
        out["image"] = (tensor - self.mean) / self.std
        if points is not None:
            out["landmarks"] = torch.as_tensor(np.asarray(result["keypoints"], np.float32)).reshape(-1, 2)
        if "target" in out:
            out["target"] = torch.as_tensor(out["target"], dtype=torch.float32)
        return out

    def __repr__(self) -> str:
        """Readable summary."""
        return f"FERTransform(image_size={self.image_size}, augment={self.augment!r}, hflip={self.hflip})"
