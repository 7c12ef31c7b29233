"""fer-zoo predict on folders, videos and real photos."""

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_zoo.cli import main
from tests.conftest import IN_THE_WILD, needs_photos
from tests.helpers import CLASSES, baseline, best_checkpoint


def predictions(run_dir):
    with open(run_dir / "predictions.csv") as handle:
        return list(csv.DictReader(handle))


def test_predict_folder_writes_csv(fitted, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{i}.png")
    main(
        baseline(
            "predict",
            "--data.root",
            str(images),
            "--data.detect_faces",
            "false",
            "--data.image_size",
            "32",
            "--ckpt_path",
            best_checkpoint(fitted),
            "--run_dir",
            str(tmp_path / "pred"),
            data="folder",
        )
    )
    rows = predictions(tmp_path / "pred")
    assert len(rows) == 3 and rows[0]["prediction"] in CLASSES
    assert abs(sum(float(rows[0][k]) for k in rows[0] if k.startswith("p_")) - 1) < 1e-3


def test_predict_video_frames_with_temporal_smoothing(fitted, tmp_path):
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (40, 40))
    for i in range(6):
        writer.write(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    writer.release()
    common = ["--data.root", str(video), "--data.detect_faces", "false", "--data.frame_stride", "2",
              "--ckpt_path", best_checkpoint(fitted)]
    main(baseline("predict", *common, "--run_dir", str(tmp_path / "raw"), data="folder"))
    main(baseline("predict", *common, "--data.temporal_smoothing", "0.5", "--run_dir", str(tmp_path / "ema"),
                  data="folder"))
    raw, ema = predictions(tmp_path / "raw"), predictions(tmp_path / "ema")
    assert [r["frame"] for r in raw] == ["0", "2", "4"] and [r["time_s"] for r in raw] == ["0.000", "0.200", "0.400"]
    p = lambda rows, i: np.array([float(rows[i][f"p_{c}"]) for c in CLASSES])
    expected = p(raw, 0)
    for i in range(3):  # p_t = 0.5 p_(t-1) + 0.5 q_t, by hand
        expected = p(raw, 0) if i == 0 else 0.5 * expected + 0.5 * p(raw, i)
        assert np.allclose(p(ema, i), expected, atol=2e-4)


def test_predict_greyscale_switch_changes_colour_inputs_only(fitted, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    colour = np.zeros((40, 40, 3), np.uint8)
    colour[..., 0] = 255  # pure red: grey value 76
    Image.fromarray(colour).save(images / "red.png")
    Image.fromarray(np.full((40, 40, 3), 76, np.uint8)).save(images / "grey76.png")
    for name, grey in (("colour", "false"), ("grey", "true")):
        main(baseline("predict", "--data.root", str(images), "--data.detect_faces", "false", "--data.greyscale", grey,
                      "--ckpt_path", best_checkpoint(fitted), "--run_dir", str(tmp_path / name), data="folder"))
    colour_rows = {Path(r["path"]).name: r for r in predictions(tmp_path / "colour")}
    grey_rows = {Path(r["path"]).name: r for r in predictions(tmp_path / "grey")}
    probs = lambda r: [r[f"p_{c}"] for c in CLASSES]
    assert probs(grey_rows["red.png"]) == probs(grey_rows["grey76.png"]) == probs(colour_rows["grey76.png"])
    assert probs(colour_rows["red.png"]) != probs(grey_rows["red.png"])


@needs_photos
def test_predict_real_photos_finds_every_face(fitted, tmp_path):
    pytest.importorskip("mediapipe")
    # No --data.image_size: the training input size (32) comes from the checkpoint.
    main(
        baseline(
            "predict",
            "--data.root",
            str(IN_THE_WILD),
            "--ckpt_path",
            best_checkpoint(fitted),
            "--run_dir",
            str(tmp_path),
            data="folder",
        )
    )
    by_file = {}
    for row in predictions(tmp_path):
        by_file.setdefault(row["path"].split("/")[-1], []).append(row)
    assert len(by_file) == 6 and len(by_file["kids.jpg"]) >= 2
    assert all(r["face_found"] == "True" for rows in by_file.values() for r in rows)


