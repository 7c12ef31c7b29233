import numpy as np
import pytest

from fer_zoo.datasets.affectnet import AffectNet
from fer_zoo.datasets.errors import LabelError
from tests.fakes import write_affectnet


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


def test_landmark_column_parse_matches_the_row_parse_and_names_a_bad_line(tmp_path):
    import pandas as pd

    from fer_zoo.datasets.affectnet import parse_landmark_column, parse_landmarks

    rng = np.random.default_rng(0)
    rows = [";".join(f"{v:.3f}" for v in rng.uniform(-50, 500, 136)) for _ in range(5)]
    rows[1] += ";"  # a trailing separator is tolerated, as by the row parser
    lines = np.arange(5) + 2
    column = parse_landmark_column(pd.Series(rows), lines, tmp_path / "t.csv")
    expected = np.stack([parse_landmarks(t, tmp_path / "t.csv", i) for t, i in zip(rows, lines)])
    assert column.dtype == np.float32 and column.shape == (5, 68, 2)
    np.testing.assert_array_equal(column, expected)
    rows[3] = rows[3].replace(";", ";x", 1)
    with pytest.raises(LabelError, match=r"t.csv:5: facial_landmarks must be"):
        parse_landmark_column(pd.Series(rows), lines, tmp_path / "t.csv")
    rows[3] = ";".join(["1"] * 134)
    with pytest.raises(LabelError, match=r"t.csv:5: facial_landmarks has 134 numbers"):
        parse_landmark_column(pd.Series(rows), lines, tmp_path / "t.csv")


def test_parsed_index_is_cached_memory_mapped_and_rebuilt_when_stale(affectnet_root, tmp_path, caplog):
    import shutil

    root, cache = tmp_path / "an", tmp_path / "cache"
    shutil.copytree(affectnet_root, root)
    first = AffectNet(root, "train", val_fraction=0.34, cache_dir=cache)
    (index_dir,) = cache.glob("affectnet8-train-index-*")
    again = AffectNet(root, "train", val_fraction=0.34, cache_dir=cache)
    # The second open reads the parsed rows from the cache, memory-mapped, not from the CSV.
    assert isinstance(again.manifest.landmarks, np.memmap) and isinstance(again.manifest.files.data, np.memmap)
    np.testing.assert_array_equal(again.manifest.landmarks, first.manifest.landmarks)
    np.testing.assert_array_equal(again.labels, first.labels)
    assert list(again.manifest.files) == list(first.manifest.files) and again.summary == first.summary
    assert again[0]["landmarks"].flags.writeable  # samples get copies of the read-only map
    # Another hold-out seed or protocol is another index.
    AffectNet(root, "train", val_fraction=0.34, split_seed=1, cache_dir=cache)
    assert len(list(cache.glob("affectnet8-train-index-*"))) == 2
    # A truncated array file: a warning naming the folder, then the CSV is parsed again.
    # (Written beside and renamed over: truncating in place would pull pages from under the open maps.)
    landmarks, cut = index_dir / "landmarks.npy", index_dir / "cut.tmp"
    cut.write_bytes(landmarks.read_bytes()[:200])
    cut.replace(landmarks)
    with caplog.at_level("WARNING"):
        rebuilt = AffectNet(root, "train", val_fraction=0.34, cache_dir=cache)
    assert "index cache is unreadable" in caplog.text and index_dir.name in caplog.text
    np.testing.assert_array_equal(rebuilt.manifest.landmarks, first.manifest.landmarks)
    # An edited CSV is a new key: the edit is seen, never the stale rows.
    csv = root / "Manually_Annotated_file_lists" / "training.csv"
    lines = csv.read_text().splitlines()
    lines = lines[:1] + [line for line in lines[1:] if line.rsplit(",", 3)[1] != "0"]  # drop the neutral rows
    csv.write_text("\n".join(lines) + "\n")
    edited = AffectNet(root, "train", val_fraction=0.34, cache_dir=cache)
    assert 0 not in set(edited.labels.tolist()) and 0 in set(first.labels.tolist())


def test_chunked_parse_gives_the_same_rows_and_line_numbers(affectnet_root, tmp_path, monkeypatch):
    import shutil

    whole = AffectNet(affectnet_root, "test", cache_dir=tmp_path / "a")
    monkeypatch.setattr(AffectNet, "chunk_rows", 4)  # 27 rows: 7 chunks, drops in several of them
    chunked = AffectNet(affectnet_root, "test", cache_dir=tmp_path / "b")
    np.testing.assert_array_equal(chunked.labels, whole.labels)
    np.testing.assert_array_equal(chunked.manifest.landmarks, whole.manifest.landmarks)
    np.testing.assert_array_equal(chunked.manifest.boxes, whole.manifest.boxes)
    assert list(chunked.manifest.files) == list(whole.manifest.files) and chunked.summary == whole.summary
    root = tmp_path / "an"
    shutil.copytree(affectnet_root, root)
    path = root / "Manually_Annotated_file_lists" / "validation.csv"
    lines = path.read_text().splitlines()
    parts = lines[10].split(",")  # file line 11: the third chunk
    parts[5] = "1;2;3"
    lines[10] = ",".join(parts)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"validation.csv:11: facial_landmarks has 3 numbers"):
        AffectNet(root, "test", cache_dir=tmp_path / "c")


def test_release_archive_layout_with_nested_image_folder(tmp_path):
    """The release unpacks to Manually_Annotated/Manually_Annotated_Images/: read it where it lies."""
    write_affectnet(tmp_path, per_class=1, images="Manually_Annotated/Manually_Annotated_Images")
    test = AffectNet(tmp_path, "test", num_classes=8)
    assert len(test) == 8 and test.images_dir == tmp_path / "Manually_Annotated" / "Manually_Annotated_Images"
    assert test[0]["image"].shape[0] == 3
