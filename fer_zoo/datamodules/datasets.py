"""One thin data module per dataset: its own options, the shared :class:`FERDataModule` behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fer_zoo.datamodules.base import FERDataModule
from fer_zoo.datasets.affectnet import AffectNet
from fer_zoo.datasets.base import FERDataset
from fer_zoo.datasets.ferplus import FERPlus
from fer_zoo.datasets.rafdb import RAFDB
from fer_zoo.datasets.synthetic import SyntheticFER
from fer_zoo.transforms import FERTransform


def _require_root(name: str, root: str | None) -> Path:
    if not root:
        raise ValueError(f"{name}: no dataset root given; pass --data.root PATH (the folder in the official layout)")
    return Path(root).expanduser()


class SyntheticDataModule(FERDataModule):
    """The generated synthetic face set (7 RAF-DB classes, exact 68-point landmarks); runs anywhere."""

    dataset_name = "synthetic"

    def __init__(self, num_train: int = 4000, num_val: int = 1000, num_test: int = 1000, synth_size: int = 64,
                 seed: int = 0, **kwargs: Any) -> None:
        """Configure the synthetic set.

        Args:
            num_train: training faces.
            num_val: validation faces.
            num_test: test faces.
            synth_size: side of the generated images (then resized to ``image_size``).
            seed: generation seed (independent of the training seed).
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(**kwargs)
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.synth_size, self.seed = synth_size, seed

    def make_dataset(self, split: str, transform: FERTransform) -> FERDataset:
        """Generate ``split`` in memory."""
        return SyntheticFER(split=split, num_samples=self.sizes[split], image_size=self.synth_size, seed=self.seed,
                            transform=transform)


class FERPlusDataModule(FERDataModule):
    """FERPlus in its official layout (8 classes, FERPlus order)."""

    dataset_name = "ferplus"

    def __init__(self, root: str | None = None, label_mode: str = "majority", votes: str = "fer2013new",
                 **kwargs: Any) -> None:
        """Configure FERPlus.

        Args:
            root: folder with ``fer2013new.csv`` and ``FER2013{Train,Valid,Test}/``.
            label_mode: training labels: majority, probability or crossentropy.
            votes: vote source: ``fer2013new`` or ``label_csv``.
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(**kwargs)
        self.root, self.label_mode, self.votes = root, label_mode, votes

    def make_dataset(self, split: str, transform: FERTransform) -> FERDataset:
        """Read ``split``."""
        return FERPlus(_require_root("ferplus", self.root), split, label_mode=self.label_mode, votes=self.votes,
                       transform=transform, **self.common_kwargs())


class RAFDBDataModule(FERDataModule):
    """RAF-DB basic in its official layout (7 classes; validation held out of train)."""

    dataset_name = "rafdb"

    def __init__(self, root: str | None = None, val_fraction: float = 0.1, split_seed: int = 0, **kwargs: Any) -> None:
        """Configure RAF-DB.

        Args:
            root: folder with ``EmoLabel/`` and ``Image/aligned/``.
            val_fraction: share of each training class held out for validation.
            split_seed: seed of the hold-out.
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(**kwargs)
        self.root, self.val_fraction, self.split_seed = root, val_fraction, split_seed

    def make_dataset(self, split: str, transform: FERTransform) -> FERDataset:
        """Read ``split``."""
        return RAFDB(_require_root("rafdb", self.root), split, val_fraction=self.val_fraction,
                     split_seed=self.split_seed, transform=transform, **self.common_kwargs())


class AffectNetDataModule(FERDataModule):
    """AffectNet, 7- or 8-class protocol (its validation set is the test split)."""

    def __init__(self, root: str | None = None, protocol: int = 8, val_fraction: float = 0.05, split_seed: int = 0,
                 **kwargs: Any) -> None:
        """Configure AffectNet.

        Args:
            root: folder with ``Manually_Annotated_file_lists/`` and ``Manually_Annotated_Images/``.
            protocol: 7 (Contempt dropped) or 8 classes.
            val_fraction: share of each training class held out for validation.
            split_seed: seed of the hold-out.
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(**kwargs)
        if protocol not in (7, 8):
            raise ValueError(f"data.protocol must be 7 or 8 for AffectNet, got {protocol}")
        self.dataset_name = f"affectnet{protocol}"
        self.root, self.protocol = root, protocol
        self.val_fraction, self.split_seed = val_fraction, split_seed

    def make_dataset(self, split: str, transform: FERTransform) -> FERDataset:
        """Read ``split``."""
        return AffectNet(_require_root("affectnet", self.root), split, num_classes=self.protocol,
                         val_fraction=self.val_fraction, split_seed=self.split_seed, transform=transform,
                         **self.common_kwargs())
