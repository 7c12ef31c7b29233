import numpy as np
from PIL import Image

from fer_zoo.datasets import cache
from fer_zoo.datasets.cache import PackedImages


def _write(folder, n):
    files = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.fromarray(np.full((10, 10), i * 10, np.uint8)).save(path)
        files.append(path)
    return files


def test_built_once_then_reused_and_invalidated(tmp_path, monkeypatch):
    files = _write(tmp_path, 5)
    first = PackedImages.build(files, (8, 8), 1, cache_dir=tmp_path / "c")
    assert first.array.shape == (5, 8, 8, 1) and first.array[3].mean() == 30
    calls = []
    original = cache.decode_image
    monkeypatch.setattr(cache, "decode_image", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = PackedImages.build(files, (8, 8), 1, cache_dir=tmp_path / "c")
    assert calls == [] and again.path == first.path
    # Editing a source image changes the key: a new cache is decoded.
    Image.fromarray(np.full((10, 10), 200, np.uint8)).save(files[3])
    import os

    os.utime(files[3], ns=(1, 1))
    rebuilt = PackedImages.build(files, (8, 8), 1, cache_dir=tmp_path / "c")
    assert len(calls) == 5 and rebuilt.path != first.path and rebuilt.array[3].mean() == 200
    # A different size is a different cache too.
    assert PackedImages.build(files, (6, 6), 1, cache_dir=tmp_path / "c").array.shape == (5, 6, 6, 1)


def test_box_crop_pads_outside(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((20, 20, 3), 255, np.uint8)).save(path)
    out = cache.decode_image(path, (10, 10), 3, box=(10, 10, 20, 20))
    assert out[:4, :4].min() == 255 and out[-3:, -3:].max() == 0


def test_truncated_or_unreadable_cache_is_rebuilt_not_used(tmp_path, caplog):
    files = _write(tmp_path, 5)
    first = PackedImages.build(files, (8, 8), 1, cache_dir=tmp_path / "c")
    path = first.path
    del first
    with open(path, "r+b") as handle:  # a half-written copy, e.g. a full disk during an rsync
        handle.truncate(100)
    again = PackedImages.build(files, (8, 8), 1, cache_dir=tmp_path / "c")
    assert again.path == path and path.stat().st_size == 5 * 8 * 8 and again.array[3].mean() == 30
    assert "truncated" in caplog.text
    path.with_suffix(".json").write_text("{not json")
    third = PackedImages.build(files, (8, 8), 1, cache_dir=tmp_path / "c")
    assert third.array[4].mean() == 40
