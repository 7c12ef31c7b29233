"""One thin data module per dataset: its own options, the shared :class:`FERDataModule` behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fer_zoo.datamodules.base import FERDataModule
from fer_zoo.datasets.affectnet import AffectNet
from fer_zoo.datasets.base import FERDataset
from fer_zoo.datasets.ferplus import FERPlus, LabelMode, VoteSource
from fer_zoo.datasets.imagefolder import ImageFolderFER, folder_classes
from fer_zoo.datasets.rafdb import RAFDB
from fer_zoo.datasets.synthetic import SyntheticFER
from fer_zoo.errors import OptionError
from fer_zoo.transforms import FERTransform


class _OnDiskDataModule(FERDataModule):
    """A dataset read from ``root``: subclasses name the dataset class and its options."""

    dataset_class: type[FERDataset]

    def __init__(self, root: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root

    def dataset_options(self) -> dict[str, Any]:
        """Dataset-specific keyword arguments."""
        return {}

    def make_dataset(self, split: str, transform: FERTransform) -> FERDataset:
        """Read ``split`` from ``root``."""
        if not self.root:
            raise ValueError(
                f"{self.dataset_name}: no dataset root given; pass --data.root PATH (the folder in the official layout)"
            )
        return self.dataset_class(
            Path(self.root).expanduser(),
            split,
            transform=transform,
            cache_dir=self.cache_dir,
            skip_corrupt=self.skip_corrupt,
            **self.dataset_options(),
        )


class SyntheticDataModule(FERDataModule):
    """The generated synthetic face set (7 RAF-DB classes, exact 68-point landmarks); runs anywhere."""

    dataset_name = "synthetic"

    def __init__(
        self,
        num_train: int = 4000,
        num_val: int = 1000,
        num_test: int = 1000,
        synth_size: int = 64,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
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
        return SyntheticFER(
            split=split,
            num_samples=self.sizes[split],
            image_size=self.synth_size,
            seed=self.seed,
            transform=transform,
        )


class FERPlusDataModule(_OnDiskDataModule):
    """FERPlus in its official layout (8 classes, FERPlus order)."""

    dataset_name = "ferplus"
    greyscale_images = True
    dataset_class = FERPlus

    def __init__(
        self,
        root: str | None = None,
        label_mode: LabelMode = "majority",
        votes: VoteSource = "fer2013new",
        **kwargs: Any,
    ) -> None:
        """Configure FERPlus.

        Args:
            root: folder with ``fer2013new.csv`` and ``FER2013{Train,Valid,Test}/``.
            label_mode: training labels: majority, probability or crossentropy.
            votes: vote source: ``fer2013new`` or ``label_csv``.
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(root, **kwargs)
        self.label_mode, self.votes = label_mode, votes

    def dataset_options(self) -> dict[str, Any]:
        """Label mode and vote source."""
        return {"label_mode": self.label_mode, "votes": self.votes}


class RAFDBDataModule(_OnDiskDataModule):
    """RAF-DB basic in its official layout (7 classes; validation held out of train)."""

    dataset_name = "rafdb"
    default_image_size = 112
    dataset_class = RAFDB

    def __init__(self, root: str | None = None, val_fraction: float = 0.1, split_seed: int = 0, **kwargs: Any) -> None:
        """Configure RAF-DB.

        Args:
            root: folder with ``EmoLabel/`` and ``Image/aligned/``.
            val_fraction: share of each training class held out for validation.
            split_seed: seed of the hold-out.
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(root, **kwargs)
        self.val_fraction, self.split_seed = val_fraction, split_seed

    def dataset_options(self) -> dict[str, Any]:
        """The validation hold-out."""
        return {"val_fraction": self.val_fraction, "split_seed": self.split_seed}


class AffectNetDataModule(RAFDBDataModule):
    """AffectNet, 7- or 8-class protocol (its validation set is the test split)."""

    dataset_class = AffectNet

    def __init__(
        self, root: str | None = None, protocol: int = 8, val_fraction: float = 0.05, split_seed: int = 0, **kwargs: Any
    ) -> None:
        """Configure AffectNet.

        Args:
            root: folder with ``Manually_Annotated_file_lists/`` and ``Manually_Annotated_Images/``.
            protocol: 7 (Contempt dropped) or 8 classes.
            val_fraction: share of each training class held out for validation.
            split_seed: seed of the hold-out.
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(root, val_fraction, split_seed, **kwargs)
        if protocol not in (7, 8):
            raise OptionError(f"data.protocol must be 7 or 8 for AffectNet, got {protocol}")
        self.dataset_name = f"affectnet{protocol}"
        self.protocol = protocol

    def dataset_options(self) -> dict[str, Any]:
        """The protocol and the validation hold-out."""
        return {**super().dataset_options(), "num_classes": self.protocol}


class ImageFolderDataModule(_OnDiskDataModule):
    """Any labelled folder tree (one sub-folder per class, synonyms allowed); see :mod:`fer_zoo.datasets.imagefolder`.

    Usually a test set for a model trained elsewhere::

        fer-zoo test --model baseline --data imagefolder --data.root my_faces/ --ckpt_path best.ckpt
    """

    dataset_class = ImageFolderFER
    dataset_name = "imagefolder"
    default_image_size = 112

    def __init__(self, root: str | None = None, cache_side: int = 112, **kwargs: Any) -> None:
        """Configure the folder.

        Args:
            root: the folder (``<root>/<class>/*.jpg`` or ``<root>/{train,val,test}/<class>/*.jpg``).
            cache_side: side the images are packed at.
            **kwargs: :class:`FERDataModule` options.
        """
        super().__init__(root, **kwargs)
        self.cache_side = cache_side

    @property
    def dataset_classes(self) -> list[str]:
        """The canonical classes of the class folders, in canonical order."""
        if not self.root:
            raise OptionError("imagefolder: no dataset root given; pass --data.root PATH")
        return list(folder_classes(self.root))

    def dataset_options(self) -> dict[str, Any]:
        """The packing size."""
        return {"cache_side": self.cache_side}
