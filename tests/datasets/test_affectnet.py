import numpy as np
import pytest

from fer_zoo.datasets.affectnet import AffectNet
from fer_zoo.datasets.errors import LabelError


def test_protocols_drop_and_count(affectnet_root):
    test8 = AffectNet(affectnet_root, "test", num_classes=8)
    assert len(test8) == 24
    assert test8.summary["dropped_expression_8"] == 1 and test8.summary["dropped_expression_10"] == 1
    test7 = AffectNet(affectnet_root, "test", num_classes=7)
    assert len(test7) == 21 and test7.summary["dropped_contempt"] == 3
    assert test7.classes == ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
    train, val = (
        AffectNet(affectnet_root, "train", val_fraction=0.34),
        AffectNet(affectnet_root, "val", val_fraction=0.34),
    )
    assert len(train) + len(val) == 24 and len(val) == 8


def test_landmarks_follow_the_face_crop(affectnet_root):
    data = AffectNet(affectnet_root, "test")
    points = data.manifest.landmarks[0]
    # Box (20, 10, 80, 100) is resized to 112x112: its corners map to the crop's corners.
    np.testing.assert_allclose(points[0], [0, 0], atol=1e-4)
    np.testing.assert_allclose(points[1], [112, 112], atol=1e-4)
    sample = data[0]
    assert sample["landmarks"].shape == (68, 2) and sample["image"].shape == (3, 112, 112)


def test_bad_landmarks_and_expression_name_line(affectnet_root, tmp_path):
    import shutil

    root = tmp_path / "an"
    shutil.copytree(affectnet_root, root)
    path = root / "Manually_Annotated_file_lists" / "validation.csv"
    lines = path.read_text().splitlines()
    parts = lines[2].split(",")
    parts[5] = "1;2;3"
    lines[2] = ",".join(parts)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"validation.csv:3: facial_landmarks has 3 numbers"):
        AffectNet(root, "test")
    parts[5], parts[6] = lines[3].split(",")[5], "12"
    lines[2] = ",".join(parts)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"validation.csv:3: unknown expression id"):
        AffectNet(root, "test")
