"""Any labelled set on disk: one sub-folder per class, folder names mapped to the canonical vocabulary.

Layout (``<split>/`` levels are optional; without them every image is in the ``test`` split)::

    <root>/[train|val|test/]<class>/<image>.jpg|png|...

Folder names go through :func:`fer_zoo.labels.canonical_name`, so ``happy``, ``Happiness`` and
``3_happy`` all mean ``happiness``. Label ids follow the canonical order of the classes
present. A folder name that is no known expression stops with an error naming the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_zoo.datasets.base import SPLITS, FERDataset, Manifest
from fer_zoo.datasets.errors import DatasetNotFoundError
from fer_zoo.labels import CANONICAL, SYNONYMS, canonical_name

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
LAYOUT = """  <root>/<class>/<image>.jpg           (one folder per class: happy/, sad/, angry/, ...; the test split)
  or <root>/{train,val,test}/<class>/<image>.jpg"""


def split_dir(root: Path, split: str) -> Path | None:
    """The folder holding ``split``'s class folders, or None when the tree has no such split."""
    if any((root / s).is_dir() for s in SPLITS):
        return root / split if (root / split).is_dir() else None
    return root if split == "test" else None


def folder_classes(root: str | Path) -> tuple[str, ...]:
    """Canonical classes of the class folders under ``root`` (all splits), in canonical order.

    Raises:
        DatasetNotFoundError: when ``root`` has no class folder.
        ValueError: naming a folder whose name is no known expression.
    """
    root = Path(root).expanduser()
    found: set[str] = set()
    for split in SPLITS:
        base = split_dir(root, split)
        for folder in sorted(p for p in base.iterdir() if p.is_dir()) if base else []:
            name = canonical_name(folder.name)
            if name is None:
                raise ValueError(
                    f"imagefolder: {folder}: folder name {folder.name!r} is not an expression; "
                    f"known names (any case, optional numeric prefix): {sorted(SYNONYMS)}"
                )
            found.add(name)
    if not found:
        raise DatasetNotFoundError("imagefolder", root, root / "<class>", LAYOUT)
    return tuple(c for c in CANONICAL if c in found)


class ImageFolderFER(FERDataset):
    """A labelled image folder (see the module docstring); images are packed at ``image_size``."""

    name = "imagefolder"

    def __init__(self, root: str | Path, split: str = "test", cache_side: int = 112, **kwargs: Any) -> None:
        """Index ``root``.

        Args:
            root: the dataset folder.
            split: ``train``, ``val`` or ``test``.
            cache_side: side the images are packed at (square).
            **kwargs: passed to :class:`FERDataset`.
        """
        self.cache_size = (cache_side, cache_side)
        super().__init__(root, split, **kwargs)

    def class_order(self) -> tuple[str, ...]:
        """The canonical classes present under the root."""
        return folder_classes(self.root)

    def load_manifest(self, split: str) -> Manifest:
        """List the images of each class folder of ``split``."""
        base = split_dir(self.root, split)
        if base is None:
            raise DatasetNotFoundError(self.name, self.root, self.root / split, LAYOUT)
        files, labels = [], []
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            label = self.classes.index(canonical_name(folder.name))
            images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            files += images
            labels += [label] * len(images)
        manifest = Manifest(files, np.array(labels, dtype=np.int64))
        manifest.summary["samples"] = len(files)
        manifest.summary["folders"] = {
            p.name: canonical_name(p.name) for p in sorted(base.iterdir()) if p.is_dir()
        }
        return manifest
