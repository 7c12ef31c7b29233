"""Prediction on a folder of arbitrary photos, one row per detected face."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fer_zoo.datamodules.base import FERDataModule
from fer_zoo.datasets.errors import CorruptImageError, DatasetNotFoundError
from fer_zoo.transforms import FERTransform

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def detect_faces(
    image: np.ndarray, min_confidence: float = 0.5, margin: float = 0.25
) -> list[tuple[int, int, int, int]]:
    """Find faces with MediaPipe's bundled short/full-range face detector.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        min_confidence: detection threshold.
        margin: box enlargement on each side, as a fraction of the box size (FER crops
            include the whole head outline).

    Returns:
        Square boxes ``(x, y, w, h)`` in pixels, left to right; empty when none is found.
    """
    import mediapipe as mp

    h, w = image.shape[:2]
    boxes = []
    for model in (1, 0):  # full range first (group photos), then short range (close-ups)
        with mp.solutions.face_detection.FaceDetection(
            model_selection=model, min_detection_confidence=min_confidence
        ) as det:
            result = det.process(image)
        for d in result.detections or []:
            b = d.location_data.relative_bounding_box
            side = max(b.width * w, b.height * h) * (1 + 2 * margin)
            cx, cy = (b.xmin + b.width / 2) * w, (b.ymin + b.height / 2) * h
            boxes.append((int(cx - side / 2), int(cy - side / 2), int(side), int(side)))
        if boxes:
            break
    return sorted(boxes)


class FolderImages(Dataset):
    """Every image under a folder (or one image file); with ``detect``, one item per face."""

    def __init__(self, root: str | Path, transform: FERTransform, detect: bool = True) -> None:
        """Index the images and, with ``detect``, their faces.

        Raises:
            DatasetNotFoundError: when ``root`` does not exist or holds no image.
            CorruptImageError: naming a file that cannot be decoded.
        """
        root = Path(root).expanduser()
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetNotFoundError(
                "folder", root, root / "*.jpg", "  a folder of .jpg/.png images (or one image file)"
            )
        self.transform, self.items = transform, []
        for path in files:
            image = self.read(path)
            boxes = detect_faces(image) if detect else []
            if detect and not boxes:
                log.warning("%s: no face found; predicting on the whole image", path)
            for face, box in enumerate(boxes or [(0, 0, image.shape[1], image.shape[0])]):
                self.items.append((path, face, box, bool(boxes) or not detect))

    @staticmethod
    def read(path: Path) -> np.ndarray:
        """Decode ``path`` as RGB, naming the file on failure."""
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except Exception as error:
            raise CorruptImageError(f"{path}: cannot read image ({type(error).__name__}: {error})") from error

    def __len__(self) -> int:
        """Number of faces (or images)."""
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The face crop of item ``index`` with its source path and box."""
        path, face, (x, y, w, h), found = self.items[index]
        crop = Image.fromarray(self.read(path)).crop((x, y, x + w, y + h))  # pads outside the image
        sample = self.transform({"image": np.asarray(crop), "label": -1, "index": index})
        sample.update(path=str(path), face=face, box=torch.tensor([x, y, w, h]), face_found=found)
        return sample


class FolderDataModule(FERDataModule):
    """Images from a folder, for ``fer-zoo predict``; class names come from the checkpoint."""

    def __init__(
        self,
        root: str | None = None,
        detect_faces: bool = True,
        class_names: list[str] | None = None,
        image_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Configure prediction inputs.

        Args:
            root: a folder of images (searched recursively) or one image file.
            detect_faces: crop every face found by MediaPipe's face detector (else the whole image).
            class_names: the model's classes; the CLI fills them from ``--ckpt_path``.
            image_size: model input side; None takes the training size stored in ``--ckpt_path`` (else 64).
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(image_size=image_size or 64, **kwargs)
        self.root, self.detect, self._class_names = root, detect_faces, class_names

    @property
    def class_names(self) -> list[str]:
        """The model's class names (from the checkpoint)."""
        if not self._class_names:
            raise ValueError("folder: class names unknown; pass --ckpt_path (or --data.class_names)")
        return list(self._class_names)

    def setup(self, stage: str | None = None) -> None:
        """Index the folder."""
        if not self.root:
            raise ValueError("folder: pass the images with --data.root PATH")
        self.datasets["predict"] = FolderImages(self.root, self.transform(False), self.detect)

    def predict_dataloader(self) -> DataLoader:
        """Loader over faces, in file order."""
        return DataLoader(self.datasets["predict"], batch_size=self.eval_batch_size, num_workers=0)
