"""Lightning data modules."""

from fer_zoo.datamodules.base import FERDataModule
from fer_zoo.datamodules.datasets import (
    AffectNetDataModule,
    FERPlusDataModule,
    ImageFolderDataModule,
    RAFDBDataModule,
    SyntheticDataModule,
)
from fer_zoo.datamodules.folder import FolderDataModule

__all__ = [
    "AffectNetDataModule",
    "FERDataModule",
    "FERPlusDataModule",
    "FolderDataModule",
    "ImageFolderDataModule",
    "RAFDBDataModule",
    "SyntheticDataModule",
]
