"""Prediction on a folder of arbitrary photos and videos, one row per detected face (per frame)."""

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
from fer_zoo.errors import OptionError
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


VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def read_video(path: Path, frame_stride: int = 1) -> list[tuple[int, float, np.ndarray]]:
    """Every ``frame_stride``-th frame of a video as ``(frame index, time in s, RGB uint8)``.

    Raises:
        CorruptImageError: naming the file when OpenCV cannot open it or it holds no frame.
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise CorruptImageError(f"{path}: cannot open video (OpenCV)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    frames, index = [], 0
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        if index % frame_stride == 0:
            frames.append((index, index / fps if fps > 0 else float("nan"), np.ascontiguousarray(bgr[..., ::-1])))
        index += 1
    capture.release()
    if not frames:
        raise CorruptImageError(f"{path}: no frame could be decoded")
    return frames


class FolderImages(Dataset):
    """Every image and video under a folder (or one file); with ``detect``, one item per face (per frame).

    Videos (``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ``.webm``) are decoded once; every
    ``frame_stride``-th frame is searched for faces and only the face crops are kept in memory.
    """

    def __init__(
        self,
        root: str | Path,
        transform: FERTransform,
        detect: bool = True,
        greyscale: bool = False,
        frame_stride: int = 1,
    ) -> None:
        """Index the images and videos and, with ``detect``, their faces.

        Args:
            root: a folder (searched recursively) or one image or video file.
            transform: the evaluation transform.
            detect: crop every face MediaPipe finds (else the whole image or frame).
            greyscale: convert every crop to grey (replicated to 3 channels) before the transform, as
                FERPlus/FER2013 training images are.
            frame_stride: use every n-th video frame.

        Raises:
            DatasetNotFoundError: when ``root`` does not exist or holds no image or video.
            CorruptImageError: naming a file that cannot be decoded.
        """
        if frame_stride < 1:
            raise OptionError(f"data.frame_stride must be >= 1, got {frame_stride}")
        root = Path(root).expanduser()
        suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes)
        if not files:
            raise DatasetNotFoundError(
                "folder", root, root / "*.jpg", "  a folder of .jpg/.png images or .mp4/.avi videos (or one file)"
            )
        self.transform, self.greyscale, self.items = transform, greyscale, []
        for path in files:
            if path.suffix.lower() in VIDEO_SUFFIXES:
                for frame, seconds, image in read_video(path, frame_stride):
                    self._add(path, image, detect, frame, seconds, keep_crop=True)
            else:
                self._add(path, self.read(path), detect, -1, float("nan"), keep_crop=False)

    def _add(self, path: Path, image: np.ndarray, detect: bool, frame: int, seconds: float, keep_crop: bool) -> None:
        boxes = detect_faces(image) if detect else []
        if detect and not boxes:
            where = f"{path} frame {frame}" if frame >= 0 else str(path)
            log.warning("%s: no face found; predicting on the whole image", where)
        for face, (x, y, w, h) in enumerate(boxes or [(0, 0, image.shape[1], image.shape[0])]):
            crop = self.crop(image, (x, y, w, h)) if keep_crop else None
            self.items.append(
                {"path": path, "frame": frame, "time_s": seconds, "face": face, "box": (x, y, w, h),
                 "found": bool(boxes) or not detect, "crop": crop}
            )

    @staticmethod
    def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The box of ``image`` (padded with black outside the image)."""
        x, y, w, h = box
        return np.asarray(Image.fromarray(image).crop((x, y, x + w, y + h)))

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
        """The face crop of item ``index`` with its source path, frame and box."""
        item = self.items[index]
        crop = item["crop"] if item["crop"] is not None else self.crop(self.read(item["path"]), item["box"])
        if self.greyscale:
            crop = np.repeat(np.asarray(Image.fromarray(crop).convert("L"))[..., None], 3, axis=2)
        sample = self.transform({"image": np.asarray(crop), "label": -1, "index": index})
        sample.update(
            path=str(item["path"]), frame=item["frame"], time_s=item["time_s"], face=item["face"],
            box=torch.tensor(item["box"]), face_found=item["found"],
        )
        return sample


class FolderDataModule(FERDataModule):
    """Images from a folder, for ``fer-zoo predict``; class names come from the checkpoint."""

    def __init__(
        self,
        root: str | None = None,
        detect_faces: bool = True,
        class_names: list[str] | None = None,
        image_size: int | None = None,
        greyscale: bool | None = None,
        frame_stride: int = 1,
        temporal_smoothing: float = 0.0,
        **kwargs: Any,
    ) -> None:
        """Configure prediction inputs.

        Args:
            root: a folder of images (searched recursively) or one image file.
            detect_faces: crop every face found by MediaPipe's face detector (else the whole image).
            class_names: the model's classes; the CLI fills them from ``--ckpt_path``.
            image_size: model input side; None takes the training size stored in ``--ckpt_path`` (else 64).
            greyscale: convert face crops to grey. None (default): grey when ``--ckpt_path`` was trained
                on grey images (FERPlus), colour otherwise; the CLI fills it in.
            frame_stride: for videos, use every n-th frame.
            temporal_smoothing: for videos, exponential smoothing of each face's probabilities over
                frames, ``p_t = a * p_(t-1) + (1 - a) * q_t`` with ``a`` this value (0: none). Faces are
                matched across frames by their left-to-right index.
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(image_size=image_size or 64, **kwargs)
        if not 0.0 <= temporal_smoothing < 1.0:
            raise OptionError(f"data.temporal_smoothing must be in [0, 1), got {temporal_smoothing}")
        self.root, self.detect, self._class_names = root, detect_faces, class_names
        self.greyscale, self.frame_stride, self.temporal_smoothing = greyscale, frame_stride, temporal_smoothing

    @property
    def class_names(self) -> list[str]:
        """The model's class names (from the checkpoint)."""
        if not self._class_names:
            raise OptionError("folder: class names unknown; pass --ckpt_path (or --data.class_names)")
        return list(self._class_names)

    def setup(self, stage: str | None = None) -> None:
        """Index the folder."""
        if not self.root:
            raise OptionError("folder: pass the images with --data.root PATH")
        self.datasets["predict"] = FolderImages(
            self.root, self.transform(False), self.detect, bool(self.greyscale), self.frame_stride
        )

    def predict_dataloader(self) -> DataLoader:
        """Loader over faces, in file order."""
        return DataLoader(self.datasets["predict"], batch_size=self.eval_batch_size, num_workers=0)
