import numpy as np
import pytest

from fer_zoo.datasets.errors import CorruptImageError, DatasetNotFoundError, LabelError
from fer_zoo.datasets.ferplus import FERPlus, derive_target
from tests.conftest import FERPLUS_REAL, needs_ferplus


def test_majority_needs_more_than_half_after_outlier_removal():
    # 6 of 10 votes: a majority; the single disgust vote is removed first.
    assert np.argmax(derive_target([6, 3, 0, 0, 0, 1, 0, 0, 0, 0], "majority")) == 0
    # 5 of 10 is not more than half: discarded.
    assert derive_target([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "majority") is None
    # 5 of 9 counted votes (after dropping the single 'fear' vote) is > 50%.
    assert np.argmax(derive_target([0, 5, 4, 0, 0, 0, 1, 0, 0, 0], "majority")) == 1
    # unknown (column 8) wins: discarded.
    assert derive_target([2, 0, 0, 0, 0, 0, 0, 0, 8, 0], "majority") is None


def test_probability_takes_top_emotions_covering_75_percent():
    target = derive_target([4, 3, 3, 0, 0, 0, 0, 0, 0, 0], "crossentropy")
    np.testing.assert_allclose(target[:3], [0.4, 0.3, 0.3], atol=1e-6)
    assert target.sum() == pytest.approx(1.0)
    # NF tying the top ends the search with too little coverage: discarded.
    assert derive_target([5, 0, 0, 0, 0, 0, 0, 0, 0, 5], "probability") is None


def test_fake_tree_counts_duplicates_and_skips(ferplus_root):
    data = FERPlus(ferplus_root, "train")
    assert len(data) == 8
    assert data.summary["rows_without_image"] == 1
    assert data.summary["dropped_unknown_or_ambiguous"] == 1
    assert data.summary["duplicate_rows_last_kept"] == 1
    # The duplicated first name keeps its last row: anger (index 4), not neutral.
    first = [i for i, f in enumerate(data.manifest.files) if f.name == "fer0000000.png"][0]
    assert data.labels[first] == 4
    sample = data[0]
    assert sample["image"].shape == (3, 48, 48)
    assert len(FERPlus(ferplus_root, "val")) == 8 and len(FERPlus(ferplus_root, "test")) == 8


def test_label_csv_votes_and_soft_targets(ferplus_root):
    data = FERPlus(ferplus_root, "train", votes="label_csv")
    assert len(data) == 8
    soft = FERPlus(ferplus_root, "train", label_mode="crossentropy")
    assert "target" in soft[0] and soft[0]["target"].shape == (8,)
    # val/test always use majority labels.
    assert FERPlus(ferplus_root, "val", label_mode="crossentropy").label_mode == "majority"
    prob = FERPlus(ferplus_root, "train", label_mode="probability")
    assert "target" not in prob[0] and 0 <= prob[0]["label"] < 8


def test_missing_root_names_expected_path(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="fer2013new.csv"):
        FERPlus(tmp_path / "nowhere", "train")


def test_bad_vote_line_names_file_and_line(ferplus_root, tmp_path):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(ferplus_root, root)
    lines = (root / "fer2013new.csv").read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",x"
    (root / "fer2013new.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(LabelError, match=r"fer2013new.csv:4:"):
        FERPlus(root, "train")


def test_corrupt_image_is_named_or_skipped_and_counted(ferplus_root, tmp_path):
    import shutil

    root = tmp_path / "corrupt"
    shutil.copytree(ferplus_root, root)
    (root / "FER2013Test" / "fer0000020.png").write_bytes(b"not a png")
    with pytest.raises(CorruptImageError, match="fer0000020.png"):
        FERPlus(root, "test", cache_dir=tmp_path / "c1")
    data = FERPlus(root, "test", cache_dir=tmp_path / "c2", skip_corrupt=True)
    assert len(data) == 7 and data.summary["unreadable_images"] == 1
    assert data.unreadable[0].endswith("fer0000020.png")


@pytest.mark.slow  # make test-full: keeps the default run near 10 minutes on 2 cores
@needs_ferplus
def test_real_ferplus_majority_counts():
    counts = {s: len(FERPlus(FERPLUS_REAL, s)) for s in ("train", "val", "test")}
    assert counts == {"train": 25057, "val": 3199, "test": 3152}
    assert len(FERPlus(FERPLUS_REAL, "train", votes="label_csv")) == 25045
