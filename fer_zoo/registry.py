"""Short names for models and datasets: each is a packaged YAML under ``fer_zoo/configs``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _configs(group: str) -> dict[str, Path]:
    folder = resources.files("fer_zoo") / "configs" / group
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def list_models() -> list[str]:
    """Registered model aliases (``fer-zoo fit --model <alias>``)."""
    return sorted(_configs("model"))


def list_datasets() -> list[str]:
    """Registered dataset aliases (``--data <alias>``)."""
    return sorted(_configs("data"))


def config_path(group: str, alias: str) -> Path | None:
    """The packaged YAML of ``alias`` in ``group`` (``model`` or ``data``), or None."""
    return _configs(group).get(alias.lower())
