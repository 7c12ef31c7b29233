"""FER methods as LightningModules."""

from fer_zoo.models.base import FERTask
from fer_zoo.models.baseline import Baseline

__all__ = ["FERTask", "Baseline"]
