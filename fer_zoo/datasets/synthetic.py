"""Procedurally generated faces whose geometry follows the expression.

Each face is drawn from an identity (face shape, feature sizes and spacing, skin, hair,
background) and an expression given as facial action intensities (brow raise / lower /
knit, eye opening, lip-corner pull, mouth opening and stretch, lip press, upper-lip raise).
Class prototypes set those actions; the intensity varies per sample (subtle expressions
overlap neutral), each identity adds its own idiosyncratic offsets, and some samples blend
in a second class, so the task is learnable but not trivial. In-the-wild nuisances follow:
head pose (roll, yaw, pitch), scale and position, illumination gradients, occluders,
blur and sensor noise. The 68 iBUG landmarks are exact: they are the very points drawn.

Generation is deterministic in ``(seed, split, index)`` and happens in memory; ``fer-zoo
synth --out DIR`` writes the set in the RAF-DB layout so the real RAF-DB loader reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_zoo.datasets.base import FERDataset, Manifest
from fer_zoo.labels import class_names

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
# Action order: inner brow raise, outer brow raise, brow lower, brow knit, eye open (+wide / -squint),
# lip-corner pull (+up / -down), mouth open, mouth stretch (+wide / -narrow), lip press, upper-lip raise.
ACTIONS = (
    "inner_raise",
    "outer_raise",
    "brow_lower",
    "brow_knit",
    "eye_open",
    "smile",
    "mouth_open",
    "stretch",
    "lip_press",
    "upper_lip_raise",
)
PROTOTYPES = {
    "neutral": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    "happiness": [0, 0.1, 0, 0, -0.35, 1.0, 0.35, 0.35, 0, 0],
    "surprise": [0.9, 0.9, 0, 0, 0.9, 0, 1.0, -0.45, 0, 0],
    "fear": [0.9, 0.3, 0, 0.6, 0.8, -0.2, 0.45, 0.6, 0, 0],
    "sadness": [0.9, -0.2, 0, 0.3, -0.3, -0.8, 0, -0.1, 0.2, 0],
    "anger": [-0.2, 0, 1.0, 0.8, -0.4, -0.25, 0, -0.1, 0.9, 0],
    "disgust": [0, 0, 0.55, 0.4, -0.45, -0.35, 0.15, 0.05, 0, 1.0],
}
# How far forward each landmark sits (nose tip most), used to fake yaw and pitch.
DEPTH = np.concatenate(
    [np.zeros(17), np.full(10, 0.35), [0.5, 0.7, 0.85, 1.0], np.full(5, 0.75), np.full(12, 0.3), np.full(20, 0.45)]
)


def face_landmarks(identity: dict[str, float], actions: np.ndarray) -> np.ndarray:
    """Return the 68 iBUG points of a frontal face in face units (x right, y down, centre 0).

    Args:
        identity: shape parameters (see :func:`sample_identity`).
        actions: the 10 action intensities in :data:`ACTIONS` order.
    """
    inner_raise, outer_raise, brow_lower, knit, eye_open, smile, mouth_open, stretch, press, upper_raise = actions
    w, h = identity["face_w"], identity["face_h"]
    open_ = max(mouth_open, 0.0)
    pts = np.zeros((68, 2))
    # Jaw 0..16 from the image-left temple around the chin; the chin drops as the mouth opens.
    phi = np.linspace(0, np.pi, 17)
    drop = 0.13 * open_ * np.sin(phi) ** 3
    pts[:17, 0] = -w * np.cos(phi)
    pts[:17, 1] = -0.05 + h * np.sin(phi) ** identity["chin"] + drop
    # Brows: 17 (outer) .. 21 (inner) on the image left, 22 (inner) .. 26 (outer) mirrored.
    t = np.linspace(0, 1, 5)
    bx = -(identity["brow_in"] + (identity["brow_out"] - identity["brow_in"]) * (1 - t))
    by = identity["brow_y"] - identity["brow_arch"] * np.sin(np.pi * (0.25 + 0.6 * t))
    raise_ = 0.09 * (outer_raise * (1 - t) + inner_raise * t) - 0.07 * brow_lower * (0.5 + 0.5 * t)
    bx = bx + 0.05 * knit * t
    by = by - raise_ + 0.03 * knit * t
    pts[17:22] = np.stack([bx, by], 1)
    pts[22:27] = np.stack([-bx[::-1], by[::-1]], 1)
    # Nose bridge 27..30 and base 31..35; an upper-lip raise wrinkles the nose upwards.
    nose_y = identity["nose_y"]
    pts[27:31, 1] = np.linspace(identity["eye_y"], nose_y - 0.06, 4)
    lift = 0.035 * max(upper_raise, 0.0)
    nw = identity["nose_w"]
    pts[31:36] = np.stack(
        [np.array([-1, -0.5, 0, 0.5, 1]) * nw, nose_y - lift + np.array([0, 0.02, 0.035, 0.02, 0])], 1
    )
    # Eyes: 36..41 image left (outer corner first), 42..47 image right (inner corner first).
    ew, ey, ex = identity["eye_w"], identity["eye_y"], identity["eye_x"]
    eh = identity["eye_h"] * np.clip(1 + 0.8 * eye_open - 0.25 * brow_lower, 0.15, 2.2)
    unit = np.array([[-0.5, 0], [-1 / 6, -1], [1 / 6, -1], [0.5, 0], [1 / 6, 0.75], [-1 / 6, 0.75]])
    eye = unit * [ew, eh]
    pts[36:42] = eye + [-ex, ey]
    pts[42:48] = np.array(
        [
            [ex - ew / 2, ey],
            [ex - ew / 6, ey - eh],
            [ex + ew / 6, ey - eh],
            [ex + ew / 2, ey],
            [ex + ew / 6, ey + 0.75 * eh],
            [ex - ew / 6, ey + 0.75 * eh],
        ]
    )
    # Mouth: outer lip 48..59, inner lip 60..67.
    half = identity["mouth_w"] / 2 * (1 + 0.3 * stretch) * (1 - 0.15 * max(press, 0))
    my = identity["mouth_y"]
    lip = identity["lip"] * (1 - 0.55 * max(press, 0))
    gap = 0.2 * open_
    upper_top = my - lip - 0.035 * max(upper_raise, 0)
    ux = np.array([-1, -0.6, -0.25, 0, 0.25, 0.6, 1])
    curve = lambda x: -0.09 * smile * np.abs(x) ** 2  # corners up for a smile, down for sadness
    outer_up = np.stack([ux * half, upper_top + 0.3 * lip * np.abs(ux) ** 2 + curve(ux)], 1)
    outer_up[3, 1] += 0.012  # cupid's bow
    lx = np.array([0.6, 0.25, 0, -0.25, -0.6])
    outer_lo = np.stack([lx * half, my + gap + lip * (1 - 0.6 * lx**2) + curve(lx)], 1)
    pts[48:55] = outer_up
    pts[55:60] = outer_lo
    ix = np.array([-0.85, -0.3, 0, 0.3, 0.85])
    inner_up = np.stack([ix * half, my - 0.004 + curve(ix)], 1)
    jx = np.array([0.3, 0, -0.3])
    inner_lo = np.stack([jx * half, my + gap + curve(jx)], 1)
    pts[60:65] = inner_up
    pts[65:68] = inner_lo
    return pts


def sample_identity(rng: np.random.Generator) -> dict[str, Any]:
    """Draw the identity: face shape, feature geometry and colours."""
    u = rng.uniform
    skin = np.array([u(120, 245), u(85, 200), u(60, 170)])
    return {
        "face_w": u(0.6, 0.76),
        "face_h": u(0.78, 0.95),
        "chin": u(0.7, 1.4),
        "brow_in": u(0.08, 0.15),
        "brow_out": u(0.48, 0.6),
        "brow_y": u(-0.42, -0.33),
        "brow_arch": u(0.02, 0.07),
        "brow_thick": u(0.025, 0.06),
        "eye_x": u(0.24, 0.34),
        "eye_y": u(-0.24, -0.16),
        "eye_w": u(0.17, 0.25),
        "eye_h": u(0.045, 0.075),
        "nose_y": u(0.12, 0.24),
        "nose_w": u(0.09, 0.15),
        "mouth_y": u(0.44, 0.55),
        "mouth_w": u(0.34, 0.5),
        "lip": u(0.025, 0.055),
        "skin": skin,
        "lip_colour": skin * np.array([u(0.65, 0.9), u(0.35, 0.6), u(0.4, 0.65)]),
        "iris": np.array([u(20, 110), u(20, 90), u(10, 70)]),
        "hair": np.array([u(10, 120)] * 3) * [1, u(0.7, 1), u(0.5, 1)],
        "has_hair": u() < 0.8,
        "quirk": rng.normal(0, 0.12, len(ACTIONS)),
    }


def sample_actions(
    label_name: str, rng: np.random.Generator, identity: dict[str, Any], names: tuple[str, ...]
) -> np.ndarray:
    """Draw action intensities: the class prototype at a random intensity, plus identity quirks and noise."""
    proto = np.asarray(PROTOTYPES[label_name], dtype=np.float64)
    actions = rng.uniform(0.3, 1.0) * proto + identity["quirk"] + rng.normal(0, 0.08, len(ACTIONS))
    if rng.uniform() < 0.15:  # a blend with a second expression
        other = names[rng.integers(len(names))]
        actions += rng.uniform(0.1, 0.35) * np.asarray(PROTOTYPES[other])
    return actions


def render_face(
    rng: np.random.Generator, label_name: str, size: int, names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one face of class ``label_name``.

    Returns:
        ``(image, landmarks)``: ``(size, size, 3)`` uint8 RGB and ``(68, 2)`` float32 points in
        continuous pixel coordinates of the returned image.
    """
    identity = sample_identity(rng)
    actions = sample_actions(label_name, rng, identity, names)
    face = face_landmarks(identity, actions)
    # Forehead arc closes the face outline above the jaw.
    theta = np.linspace(np.pi, 2 * np.pi, 15)[1:-1]
    forehead = np.stack([identity["face_w"] * np.cos(theta), -0.05 + 0.95 * np.sin(theta)], 1)
    outline = np.concatenate([face[:17], forehead[::-1]])

    # Head pose: yaw and pitch shift forward points; then roll, scale and translation.
    yaw, pitch = rng.uniform(-0.35, 0.35), rng.uniform(-0.2, 0.2)
    roll = np.deg2rad(rng.uniform(-18, 18))
    scale = rng.uniform(0.48, 0.6) * (1 - 0.2 * abs(yaw))
    shift = rng.uniform(-0.05, 0.05, 2) - [0, 0.04]  # faces sit a little high, chins stay in frame
    scale_render = 3  # draw at 3x and downsample: anti-aliasing and sub-pixel features
    canvas = size * scale_render

    def place(points: np.ndarray, depth: np.ndarray) -> np.ndarray:
        p = points.copy()
        p[:, 0] = p[:, 0] * (1 - 0.25 * abs(yaw)) + 0.28 * yaw * depth
        p[:, 1] = p[:, 1] + 0.18 * pitch * depth
        c, s = np.cos(roll), np.sin(roll)
        p = p @ np.array([[c, s], [-s, c]])
        return (p * scale + 0.5 + shift) * canvas

    pts = place(face, DEPTH)
    outline_px = place(outline, np.zeros(len(outline)))
    centre = place(np.zeros((1, 2)), np.zeros(1))[0]

    img = _background(rng, canvas)
    line = lambda t: max(1, int(round(t * scale * canvas)))
    if identity["has_hair"]:
        hair_pts = place(np.array([[0.0, -0.35]]), np.zeros(1))[0]
        axes = (int(identity["face_w"] * 1.12 * scale * canvas), int(0.78 * scale * canvas))
        cv2.ellipse(
            img, _pt(hair_pts), axes, float(np.rad2deg(roll)), 0, 360, identity["hair"].tolist(), -1, cv2.LINE_AA
        )
    cv2.fillPoly(img, [_poly(outline_px)], identity["skin"].tolist(), cv2.LINE_AA)
    shade = (identity["skin"] * 0.78).tolist()
    # Eyes: sclera, iris (follows a random gaze), lids.
    for eye in (pts[36:42], pts[42:48]):
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(mask, [_poly(eye)], 255, cv2.LINE_AA)
        iris = np.zeros_like(mask)
        c = eye.mean(0) + rng.normal(0, 0.012, 2) * scale * canvas
        radius = max(1, int(0.33 * np.linalg.norm(eye[3] - eye[0])))
        cv2.circle(iris, _pt(c), radius, 255, -1, cv2.LINE_AA)
        sclera = np.array([235, 235, 230], np.float32)
        alpha = mask[..., None] / 255.0
        iris_alpha = (iris[..., None] / 255.0) * alpha
        img[:] = (img * (1 - alpha) + sclera * (alpha - iris_alpha) + identity["iris"] * iris_alpha).astype(np.uint8)
        cv2.polylines(img, [_poly(eye)], True, (40, 30, 30), line(0.012), cv2.LINE_AA)
    # Brows.
    for brow in (pts[17:22], pts[22:27]):
        cv2.polylines(
            img, [_poly(brow)], False, (identity["hair"] * 0.8).tolist(), line(identity["brow_thick"]), cv2.LINE_AA
        )
    # Nose.
    cv2.polylines(img, [_poly(pts[27:31])], False, shade, line(0.015), cv2.LINE_AA)
    cv2.polylines(img, [_poly(pts[31:36])], False, (identity["skin"] * 0.6).tolist(), line(0.018), cv2.LINE_AA)
    # Mouth: lips, then the dark opening (with teeth when the lips part wide).
    cv2.fillPoly(img, [_poly(pts[48:60])], identity["lip_colour"].tolist(), cv2.LINE_AA)
    inner = pts[60:68]
    if np.linalg.norm(inner[6] - inner[2]) > 0.02 * scale * canvas:
        cv2.fillPoly(img, [_poly(inner)], (35, 15, 20), cv2.LINE_AA)
        if actions[5] > 0.3:
            teeth = inner[[0, 1, 2, 3, 4]].copy()
            teeth = np.concatenate([teeth, teeth[::-1] + [0, 0.35 * np.linalg.norm(inner[6] - inner[2])]])
            cv2.fillPoly(img, [_poly(teeth)], (230, 225, 215), cv2.LINE_AA)
    else:
        cv2.polylines(img, [_poly(inner[[0, 1, 2, 3, 4]])], False, (60, 25, 30), line(0.012), cv2.LINE_AA)
    if actions[2] > 0.4 or actions[3] > 0.5:  # frown lines between knitted brows
        mid = (pts[21] + pts[22]) / 2
        for dx in (-0.025, 0.025):
            a = mid + np.array([dx, 0.01]) * scale * canvas
            b = a + np.array([0, 0.07]) * scale * canvas
            cv2.line(img, _pt(a), _pt(b), shade, line(0.008), cv2.LINE_AA)

    img = _nuisances(img, rng, centre, scale * canvas)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    landmarks = ((pts + 0.5) / scale_render).astype(np.float32)  # cv2 draws at pixel centres
    return img, landmarks


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def _poly(points: np.ndarray) -> np.ndarray:
    return np.round(points).astype(np.int32).reshape(-1, 1, 2)


def _background(rng: np.random.Generator, canvas: int) -> np.ndarray:
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, canvas)[None, :, None]
    angle = rng.uniform(0, np.pi)
    grid = np.cos(angle) * t + np.sin(angle) * t.transpose(1, 0, 2)
    grid = (grid - grid.min()) / max(grid.max() - grid.min(), 1e-6)
    img = (
        a * (1 - grid)
        + b * grid
        + rng.normal(0, 12, (canvas // 8 + 1, canvas // 8 + 1, 1)).repeat(8, 0).repeat(8, 1)[:canvas, :canvas]
    )
    return np.clip(img, 0, 255).astype(np.uint8)


def _nuisances(img: np.ndarray, rng: np.random.Generator, centre: np.ndarray, face_px: float) -> np.ndarray:
    canvas = img.shape[0]
    if rng.uniform() < 0.25:  # an occluder (hand, object, hair) over part of the face
        w, h = rng.uniform(0.3, 0.8) * face_px, rng.uniform(0.2, 0.5) * face_px
        c = centre + rng.uniform(-0.6, 0.6, 2) * face_px
        box = cv2.boxPoints(((float(c[0]), float(c[1])), (float(w), float(h)), float(rng.uniform(0, 180))))
        cv2.fillPoly(img, [box.astype(np.int32)], rng.uniform(0, 255, 3).tolist(), cv2.LINE_AA)
    # Illumination: a directional gradient, a global gain and a gamma.
    y, x = np.mgrid[0:canvas, 0:canvas] / canvas - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0, 0.6) * (np.cos(angle) * x + np.sin(angle) * y) * 2
    out = img.astype(np.float32) * light[..., None] * rng.uniform(0.6, 1.25)
    out = 255 * (np.clip(out, 0, 255) / 255) ** rng.uniform(0.7, 1.4)
    if rng.uniform() < 0.35:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 2.5))
    out += rng.normal(0, rng.uniform(0, 10), out.shape)
    if rng.uniform() < 0.2:  # greyscale capture
        out = out.mean(2, keepdims=True).repeat(3, 2)
    return np.clip(out, 0, 255).astype(np.uint8)


class SyntheticFER(FERDataset):
    """The synthetic face set: 7 RAF-DB classes, exact 68-point landmarks, generated in memory.

    Labels are balanced up to chance: each sample's class is drawn uniformly. The same
    ``(seed, split, index)`` always yields the same face.
    """

    name = "synthetic"
    cache_size = None

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        num_samples: int | None = None,
        image_size: int = 64,
        seed: int = 0,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        **_: Any,
    ) -> None:
        """Generate a split.

        Args:
            root: unused (the set lives in memory); accepted for a uniform interface.
            split: ``train``, ``val`` or ``test``.
            num_samples: number of faces (default 4000 train, 1000 val/test).
            image_size: side of the square images.
            seed: generation seed (splits use disjoint streams).
            transform: maps a sample dict to model inputs.
        """
        if split not in SPLIT_IDS:
            raise ValueError(f"synthetic: split must be one of {tuple(SPLIT_IDS)}, got {split!r}")
        self.root, self.split, self.transform = Path(root or "."), split, transform
        self.classes = class_names(self.name)
        n = num_samples if num_samples is not None else (4000 if split == "train" else 1000)
        labels = np.random.default_rng([seed, SPLIT_IDS[split], 7]).integers(len(self.classes), size=n)
        images = np.zeros((n, image_size, image_size, 3), np.uint8)
        landmarks = np.zeros((n, 68, 2), np.float32)
        for i, label in enumerate(labels):
            rng = np.random.default_rng([seed, SPLIT_IDS[split], i])
            images[i], landmarks[i] = render_face(rng, self.classes[label], image_size, self.classes)
        self.images, self.rows, self.packed_path = images, np.arange(n), None
        self.unreadable: list[str] = []
        self.manifest = Manifest(
            [Path(f"synthetic/{split}/{i:06d}") for i in range(n)],
            labels.astype(np.int64),
            landmarks=landmarks,
            summary={"samples": n},
        )
        self.summary = self.manifest.summary


def write_rafdb_layout(
    out: str | Path, seed: int = 0, image_size: int = 100, num_train: int = 4000, num_test: int = 1000
) -> Path:
    """Write the synthetic set in the RAF-DB basic layout (readable by :class:`~fer_zoo.datasets.rafdb.RAFDB`).

    Args:
        out: the new dataset root.
        seed: generation seed.
        image_size: side of the written JPEGs (RAF-DB's aligned crops are 100x100).
        num_train: training images (the RAF-DB loader holds out its own validation split).
        num_test: test images.

    Returns:
        The root written.
    """
    from PIL import Image

    out = Path(out)
    (out / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (out / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
    lines = []
    for split, prefix, n, digits in (("train", "train", num_train, 5), ("test", "test", num_test, 4)):
        data = SyntheticFER(split=split, num_samples=n, image_size=image_size, seed=seed)
        for i in range(len(data)):
            stem = f"{prefix}_{i + 1:0{digits}d}"
            Image.fromarray(data.image(i)).save(out / "Image" / "aligned" / f"{stem}_aligned.jpg", quality=95)
            lines.append(f"{stem}.jpg {int(data.labels[i]) + 1}")
    (out / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return out
