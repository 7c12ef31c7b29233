import numpy as np
import pytest

from fer_zoo.datasets.errors import CorruptImageError, DatasetNotFoundError, LabelError
from fer_zoo.datasets.rafdb import RAFDB
from fer_zoo.datasets.synthetic import write_rafdb_layout


def test_splits_labels_and_holdout(rafdb_root):
    train, val, test = (RAFDB(rafdb_root, s, val_fraction=0.25) for s in ("train", "val", "test"))
    assert len(train) + len(val) == 28 and len(test) == 14
    assert not set(train.manifest.files) & set(val.manifest.files)
    # ids 1..7 are stored 0-based in the official order.
    assert sorted(np.unique(test.labels)) == list(range(7))
    assert test.classes[0] == "surprise" and test.classes[6] == "neutral"
    assert test[0]["image"].shape == (3, 100, 100)


def test_unknown_label_names_file_and_line(rafdb_root, tmp_path):
    import shutil

    root = tmp_path / "raf"
    shutil.copytree(rafdb_root, root)
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[2] = lines[2].split()[0] + " 9"
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"list_patition_label.txt:3: unknown label id '9'"):
        RAFDB(root, "train")


def test_missing_layout_and_missing_image(rafdb_root, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="EmoLabel"):
        RAFDB(tmp_path, "train")
    import shutil

    root = tmp_path / "raf"
    shutil.copytree(rafdb_root, root)
    (root / "Image" / "aligned" / "test_0001_aligned.jpg").unlink()
    with pytest.raises(CorruptImageError, match="test_0001_aligned.jpg"):
        RAFDB(root, "test")


def test_synthetic_written_in_rafdb_layout_reads_back(tmp_path):
    root = write_rafdb_layout(tmp_path / "synth", num_train=40, num_test=14, image_size=64)
    data = RAFDB(root, "test")
    assert len(data) == 14
    assert (root / "Image" / "aligned" / "train_00001_aligned.jpg").exists()
