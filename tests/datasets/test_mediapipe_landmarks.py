import json

import numpy as np
import pytest
from PIL import Image

from fer_zoo.cli import main
from fer_zoo.datamodules import FERPlusDataModule
from fer_zoo.datasets import mediapipe_landmarks as mpl
from fer_zoo.datasets.ferplus import FERPlus
from fer_zoo.datasets.synthetic import SyntheticFER
from tests import fakes


@pytest.fixture(scope="module")
def ferplus_faces(tmp_path_factory):
    """A fake FERPlus tree whose val images are 48x48 grey synthetic faces, except two noise images."""
    root = tmp_path_factory.mktemp("ferplus_faces")
    fakes.write_ferplus(root)
    faces = SyntheticFER(split="val", num_samples=16, image_size=96, seed=5)
    pngs = sorted((root / "FER2013Valid").glob("*.png"))
    for i, png in enumerate(pngs[2:]):
        Image.fromarray(faces.image(i)).convert("L").resize((48, 48), Image.BILINEAR).save(png)
    return root


def _val(root, cache_dir):
    return FERPlus(root, "val", cache_dir=cache_dir)


def test_build_detects_faces_caches_and_resumes(ferplus_faces, tmp_path, monkeypatch):
    data = _val(ferplus_faces, tmp_path)
    real_chunk = mpl._detect_chunk
    calls = []

    def interrupted(job):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_chunk(job)

    monkeypatch.setattr(mpl, "_detect_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mpl.build(data.packed_path, data.images.shape, workers=1, chunk=3)
    assert len(list(mpl.cache_path(data.packed_path, mpl.DetectorSettings()).with_suffix(".parts").glob("*.npz"))) == 1
    monkeypatch.setattr(mpl, "_detect_chunk", real_chunk)
    cache = mpl.build(data.packed_path, data.images.shape, workers=1, chunk=3)
    assert cache.points.shape == (len(data.rows), 478, 3)
    # the two noise images have no face; most synthetic faces are found
    noise_rows = [
        i
        for i, f in enumerate(data.manifest.files)
        if f.name in {p.name for p in sorted((ferplus_faces / "FER2013Valid").glob("*.png"))[:2]}
    ]
    assert not cache.found[noise_rows].any() and cache.found.sum() >= len(data.rows) - 4
    assert np.isnan(cache.points[~cache.found]).all() and not np.isnan(cache.points[cache.found]).any()
    meta = json.loads(cache.path.with_suffix(".json").read_text())
    assert meta["found"] == int(cache.found.sum()) and meta["images"] == len(data.rows)

    monkeypatch.setattr(mpl, "_detect_chunk", lambda job: pytest.fail("a current cache must not be rebuilt"))
    again = mpl.build(data.packed_path, data.images.shape, workers=1, chunk=3)
    assert np.array_equal(again.found, cache.found)


def test_data_module_serves_mediapipe_landmarks_with_fallback(ferplus_faces, tmp_path):
    main(
        [
            "landmarks",
            "--data",
            "ferplus",
            "--data.root",
            str(ferplus_faces),
            "--data.cache_dir",
            str(tmp_path),
            "--splits",
            "val",
            "--workers",
            "1",
        ]
    )
    dm = FERPlusDataModule(
        root=str(ferplus_faces),
        cache_dir=str(tmp_path),
        landmarks="mediapipe",
        landmark_layout=19,
        image_size=64,
        num_workers=0,
    )
    data = dm.dataset("val")
    assert data.landmark_found.sum() >= len(data) - 4 and not data.landmark_found.all()
    missing = int(np.flatnonzero(~data.landmark_found)[0])
    sample = data[missing]
    assert sample["landmarks"].shape == (19, 2) and sample["landmark_found"] is False
    # fallback: the mean shape inside the 64 px crop
    assert bool((sample["landmarks"] >= 0).all() and (sample["landmarks"] <= 64).all())
    assert data[int(np.flatnonzero(data.landmark_found)[0])]["landmark_found"] is True


def test_missing_cache_names_the_command(ferplus_faces, tmp_path):
    dm = FERPlusDataModule(root=str(ferplus_faces), cache_dir=str(tmp_path), landmarks="mediapipe", num_workers=0)
    with pytest.raises(FileNotFoundError, match="fer-zoo landmarks --data ferplus"):
        dm.dataset("test")


def test_missing_cache_command_builds_the_label_modes_own_images(ferplus_faces, tmp_path):
    """Vote-distribution labels keep the faces without a majority (another packed set): the error's command, run as
    printed, must build the cache that very data module reads."""
    import re
    import shlex
    import shutil

    root = tmp_path / "ferplus"
    shutil.copytree(ferplus_faces, root)
    faces = SyntheticFER(split="train", num_samples=12, image_size=96, seed=6)
    for i, png in enumerate(sorted((root / "FER2013Train").glob("*.png"))):
        Image.fromarray(faces.image(i)).convert("L").resize((48, 48), Image.BILINEAR).save(png)
    dm = FERPlusDataModule(
        root=str(root), cache_dir=str(tmp_path), landmarks="mediapipe", label_mode="crossentropy", num_workers=0
    )
    with pytest.raises(FileNotFoundError) as error:
        dm.dataset("train")
    command = re.search(r"`fer-zoo (landmarks [^`]+)`", str(error.value)).group(1)
    assert "--data_options label_mode=crossentropy" in command
    report = tmp_path / "report" / "landmarks.json"
    setup = [*shlex.split(command), "--data.cache_dir", str(tmp_path), "--splits", "train", "--workers", "1"]
    main([*setup, "--report", str(report)])
    data = dm.dataset("train")
    majority = FERPlus(root, "train", cache_dir=tmp_path)
    assert len(data) == len(majority) + 1 and len(data.landmark_found) == len(data) and data.landmark_found.any()
    # the report keeps what the detection run measured, also when a later call finds the cache current
    main([*setup, "--report", str(report)])
    built = json.loads(report.read_text())["splits"]["train"]
    assert built["images"] == len(data) and built["built"]["found"] == int(data.landmark_found.sum())
    assert built["built"]["workers"] == 1 and built["built"]["seconds"] > 0


def test_copied_dataset_reuses_landmarks(ferplus_faces, tmp_path, monkeypatch):
    """New mtimes give a new packed file, but the landmark cache is keyed by the pixels, so it is kept."""
    import os
    import shutil

    data = _val(ferplus_faces, tmp_path)
    cache = mpl.build(data.packed_path, data.images.shape, workers=1, chunk=8)
    copy = tmp_path / "copy"
    shutil.copytree(ferplus_faces, copy)
    for png in (copy / "FER2013Valid").glob("*.png"):
        os.utime(png, (1e9, 1e9))
    moved = _val(copy, tmp_path)
    assert moved.packed_path != data.packed_path
    monkeypatch.setattr(mpl, "_detect_chunk", lambda job: pytest.fail("the copied dataset must reuse the landmarks"))
    again = mpl.build(moved.packed_path, moved.images.shape, workers=1, chunk=8)
    assert again.path == cache.path and np.array_equal(again.found, cache.found)
    # different pixels: a different cache
    Image.new("L", (48, 48), 7).save(moved.manifest.files[-1])
    changed = _val(copy, tmp_path)
    assert mpl.cache_path(changed.packed_path, mpl.DetectorSettings()) != cache.path


def test_corrupt_landmark_cache_is_a_named_error(tmp_path):
    import pytest

    from fer_zoo.datasets.mediapipe_landmarks import LandmarkCache

    path = tmp_path / "landmarks.npz"
    np.savez(path, points=np.zeros((3, 68, 2)), found=np.ones(3, bool), confidence=np.ones(3), attempt=np.zeros(3))
    assert len(LandmarkCache.load(path).points) == 3
    path.write_bytes(path.read_bytes()[:200])  # truncated by a full disk or a killed copy
    with pytest.raises(ValueError, match="landmarks.npz: corrupt landmark cache"):
        LandmarkCache.load(path)
