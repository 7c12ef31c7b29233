"""Packed image cache: decode a dataset once into a uint8 memmap and reuse it.

Small images (FERPlus is 28k PNGs of 48x48) cost more to open and decode than to train
on. The first run decodes every image (threads, optionally a face-box crop and a resize
to a fixed size) into one ``(N, H, W, C)`` uint8 file; later runs memory-map it.

The cache key hashes each source file's path, size and modification time plus every
decoding parameter, so an edited, added or removed image, or a different size, builds a
new cache instead of silently reusing a stale one. Files are written to a temporary name
and renamed, so an interrupted build never leaves a half-written cache behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from fer_zoo.datasets.errors import CorruptImageError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """Return ``$FER_ZOO_CACHE`` or ``$FER_ZOO_HOME/cache`` (default ``~/.cache/fer_zoo/cache``)."""
    if os.environ.get("FER_ZOO_CACHE"):
        return Path(os.environ["FER_ZOO_CACHE"])
    home = Path(os.environ.get("FER_ZOO_HOME", Path.home() / ".cache" / "fer_zoo"))
    return home / "cache"


def decode_image(
    path: Path, size: tuple[int, int] | None, channels: int, box: Sequence[float] | None = None
) -> np.ndarray:
    """Decode one image to ``(H, W, channels)`` uint8, cropping to ``box`` and resizing to ``size``.

    Args:
        path: the image file.
        size: ``(height, width)`` to resize to, or None to keep the decoded size.
        channels: 1 (greyscale) or 3 (RGB).
        box: optional ``(x, y, w, h)`` crop in pixels, clipped to the image.

    Raises:
        CorruptImageError: naming the file when it is missing or cannot be decoded.
    """
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            if box is not None:
                # PIL pads a crop that reaches outside the image with zeros, which keeps landmarks
                # mapped into the box consistent; a box with no overlap at all is an error.
                x, y, w, h = (float(v) for v in box)
                if w < 1 or h < 1 or x >= im.width or y >= im.height or x + w <= 0 or y + h <= 0:
                    raise ValueError(f"face box {tuple(box)} lies outside the {im.width}x{im.height} image")
                im = im.crop((int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))))
            if size is not None and (im.height, im.width) != tuple(size):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            array = np.asarray(im, dtype=np.uint8)
    except Exception as error:  # PIL raises many types; all mean "this file is unusable".
        raise CorruptImageError(f"{path}: cannot read image ({type(error).__name__}: {error})") from error
    return array[..., None] if array.ndim == 2 else array


def _cache_key(files: Sequence[Path], params: dict) -> str:
    # Iterates ``files`` lazily (a PathArray yields one Path at a time): no list of Path objects per sample.
    digest = hashlib.sha1(json.dumps({"v": CACHE_VERSION, **params}, sort_keys=True).encode())
    for file in files:
        try:
            stat = os.stat(file)
            digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            digest.update(f"{file}\0missing\n".encode())
    return digest.hexdigest()[:20]


class PackedImages:
    """A packed, memory-mapped array of images with the list of files that could not be read.

    Attributes:
        array: ``(N, H, W, C)`` uint8 memmap, one row per input file (zeros for a bad file).
        bad: indices of files that could not be read (only when built with ``skip_bad``).
        path: the cache file.
    """

    def __init__(self, array: np.ndarray, bad: list[int], path: Path) -> None:
        """Wrap an opened cache."""
        self.array, self.bad, self.path = array, bad, path

    @classmethod
    def build(
        cls,
        files: Sequence[Path],
        size: tuple[int, int],
        channels: int = 3,
        boxes: Sequence[Sequence[float]] | None = None,
        cache_dir: str | Path | None = None,
        name: str = "images",
        skip_bad: bool = False,
        workers: int | None = None,
    ) -> PackedImages:
        """Open the cache for ``files``, decoding them first if no current cache exists.

        Args:
            files: image files, in dataset order.
            size: ``(height, width)`` every image is resized to.
            channels: 1 or 3.
            boxes: optional per-file ``(x, y, w, h)`` crops.
            cache_dir: where caches live (default :func:`default_cache_dir`).
            name: a readable prefix of the cache file name.
            skip_bad: record unreadable files in ``bad`` instead of raising.
            workers: decoding threads (default: the CPU count).

        Raises:
            CorruptImageError: naming the first unreadable file, unless ``skip_bad``.
        """
        params = {
            "size": list(size),
            "channels": channels,
            "n": len(files),
            "boxes": hashlib.sha1(np.asarray(boxes, dtype=np.float64).tobytes()).hexdigest()
            if boxes is not None
            else None,
        }
        directory = Path(cache_dir) if cache_dir else default_cache_dir()
        key = _cache_key(files, params)
        path = directory / f"{name}-{key}.u8"
        meta_path = path.with_suffix(".json")
        shape = (len(files), size[0], size[1], channels)
        if path.exists() and meta_path.exists() and not _intact(path, meta_path, shape):
            log.warning("%s: cache file is truncated or its metadata is unreadable; rebuilding it", path)
            path.unlink()
        if path.exists() and meta_path.exists():
            meta = json.loads(meta_path.read_text())
            if meta["bad"] and not skip_bad:
                raise CorruptImageError(
                    f"{files[meta['bad'][0]]}: cannot read image (recorded in {meta_path}); "
                    f"{len(meta['bad'])} unreadable file(s) in all. Fix them, or allow skipping (skip_corrupt=True)."
                )
            return cls(np.memmap(path, dtype=np.uint8, mode="r", shape=shape), meta["bad"], path)

        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        row_bytes = size[0] * size[1] * channels
        # Rows are written with pwrite, not through a writable memmap: dirty mapped pages count as the
        # packer's resident memory (8 GB at AffectNet size), written pages only as the OS page cache.
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        bad: list[int] = []

        def work(i: int) -> int | None:
            try:
                pixels = decode_image(files[i], size, channels, None if boxes is None else boxes[i])
            except CorruptImageError:
                if not skip_bad:
                    raise
                return i  # its row stays zeros
            os.pwrite(fd, np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(), i * row_bytes)
            return None

        log.info("packing %d images into %s", len(files), path)
        try:
            os.ftruncate(fd, len(files) * row_bytes)
            with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
                bad = [i for i in pool.map(work, range(len(files)), chunksize=256) if i is not None]
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
        finally:
            if fd >= 0:
                os.close(fd)
            if tmp.exists():
                tmp.unlink()
        meta = {"files": len(files), "shape": shape, "bad": bad, "bad_files": [str(files[i]) for i in bad]}
        meta_path.write_text(json.dumps({**meta, "sha1": _file_sha1(path)}, indent=1))
        return cls(np.memmap(path, dtype=np.uint8, mode="r", shape=shape), bad, path)

    @staticmethod
    def content_digest(path: str | Path) -> str:
        """SHA-1 of a packed file's pixels, stored in its metadata on first use.

        Unlike the cache key (file paths, sizes and mtimes), it survives a copy or move of the
        dataset, so caches derived from the pixels (e.g. MediaPipe landmarks) are kept.
        """
        path = Path(path)
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text())
        if "sha1" not in meta:
            meta["sha1"] = _file_sha1(path)
            tmp = meta_path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(meta, indent=1))
            os.replace(tmp, meta_path)
        return meta["sha1"]


def _intact(path: Path, meta_path: Path, shape: tuple[int, ...]) -> bool:
    """Whether a cache file has exactly the bytes its shape needs and readable metadata.

    A cheap check, run on every open; the pixels' SHA-1 in the metadata is for derived caches, too slow to check here).
    """
    try:
        json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return path.stat().st_size == int(np.prod(shape))


def _file_sha1(path: Path, block: int = 1 << 24) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


#: per-sample arrays a parsed index may hold (see :func:`cached_index`).
INDEX_ARRAYS = ("files", "labels", "targets", "landmarks", "boxes")


def cached_index(
    sources: Sequence[Path],
    params: dict,
    parse,
    cache_dir: str | Path | None = None,
    name: str = "index",
) -> tuple[dict[str, np.ndarray], dict]:
    """Parse a dataset index once and memory-map its per-sample arrays afterwards.

    Large indexes (AffectNet: 287 k CSV rows with 136 landmark numbers each) cost time to
    parse and, held as private arrays, memory that grows with the dataset in the main process
    and, counted per process, in every loader worker. The parsed arrays are written as ``.npy``
    files in a folder named by a key of the index files (path, size, mtime) and ``params``;
    later opens memory-map them read-only, so their pages are shared file cache.

    Args:
        sources: the index files parsed (a change to any of them builds a new folder).
        params: every parsing option that changes the result (split, protocol, hold-out seed...).
        parse: returns ``(arrays, summary)``: arrays named as in :data:`INDEX_ARRAYS` (None
            for absent ones; ``files`` a fixed-width byte-string array), and a JSON-able summary.
        cache_dir: where caches live (default :func:`default_cache_dir`).
        name: a readable prefix of the folder name.

    Returns:
        ``(arrays, summary)`` with the arrays memory-mapped read-only.
    """
    directory = (Path(cache_dir) if cache_dir else default_cache_dir()) / f"{name}-{_cache_key(sources, params)}"
    if directory.is_dir():
        try:
            return _open_index(directory)
        except (OSError, ValueError, KeyError) as error:
            log.warning("%s: index cache is unreadable (%s); parsing the index again", directory, error)
            shutil.rmtree(directory, ignore_errors=True)
    arrays, summary = parse()
    tmp = directory.with_name(f"{directory.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        present = {}
        for key in INDEX_ARRAYS:
            if arrays.get(key) is not None:
                np.save(tmp / f"{key}.npy", np.ascontiguousarray(arrays[key]), allow_pickle=False)
                present[key] = list(np.shape(arrays[key]))
        (tmp / "index.json").write_text(json.dumps({"arrays": present, "summary": summary}, indent=1, default=_plain))
        try:
            os.replace(tmp, directory)
        except OSError:  # another process finished the same folder first: use theirs
            if not directory.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _open_index(directory)


def _open_index(directory: Path) -> tuple[dict[str, np.ndarray], dict]:
    meta = json.loads((directory / "index.json").read_text())
    arrays: dict[str, np.ndarray] = {key: None for key in INDEX_ARRAYS}
    for key, shape in meta["arrays"].items():
        # numpy cannot memory-map zero bytes: an empty array is read as it is.
        mode = "r" if int(np.prod(shape)) else None
        array = np.load(directory / f"{key}.npy", mmap_mode=mode, allow_pickle=False)
        if list(array.shape) != shape:
            raise ValueError(f"{key}.npy has shape {list(array.shape)}, the index says {shape}")
        arrays[key] = array
    return arrays, meta["summary"]


def _plain(value):
    return value.item() if hasattr(value, "item") else str(value)
