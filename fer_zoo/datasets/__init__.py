"""Plain torch Datasets in the official layouts of RAF-DB, FERPlus and AffectNet, plus the synthetic set."""

from fer_zoo.datasets.affectnet import AffectNet
from fer_zoo.datasets.base import FERDataset
from fer_zoo.datasets.errors import CorruptImageError, DatasetNotFoundError, LabelError
from fer_zoo.datasets.ferplus import FERPlus
from fer_zoo.datasets.imagefolder import ImageFolderFER
from fer_zoo.datasets.rafdb import RAFDB
from fer_zoo.datasets.synthetic import SyntheticFER

__all__ = [
    "RAFDB",
    "AffectNet",
    "CorruptImageError",
    "DatasetNotFoundError",
    "FERDataset",
    "FERPlus",
    "ImageFolderFER",
    "LabelError",
    "SyntheticFER",
]
