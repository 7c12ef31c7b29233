"""FER methods as LightningModules."""

from fer_zoo.models.base import FERTask
from fer_zoo.models.baseline import Baseline
from fer_zoo.models.clip_baselines import CLIPLinearProbe, CLIPZeroShot
from fer_zoo.models.e2n import E2N
from fer_zoo.models.lacovl import LaCoVL
from fer_zoo.models.lanet import LANet
from fer_zoo.models.mpa import MPA
from fer_zoo.models.mpa_face import MPAFace

__all__ = ["E2N", "MPA", "MPAFace", "Baseline", "CLIPLinearProbe", "CLIPZeroShot", "FERTask", "LANet", "LaCoVL"]
