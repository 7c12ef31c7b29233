"""Sample transforms: albumentations pipelines that move landmarks with the image."""

from fer_zoo.transforms.augment import FERTransform

__all__ = ["FERTransform"]
