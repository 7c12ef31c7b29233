"""Short names for models and datasets: each is a packaged YAML under ``fer_zoo/configs``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any


def _configs(group: str) -> dict[str, Path]:
    folder = resources.files("fer_zoo") / "configs" / group
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def list_models() -> list[str]:
    """Registered model aliases (``fer-zoo fit --model <alias>``)."""
    return sorted(_configs("model"))


def list_datasets() -> list[str]:
    """Registered dataset aliases (``--data <alias>``)."""
    return sorted(_configs("data"))


def import_class(class_path: str) -> type:
    """The class at a dotted ``class_path`` (``fer_zoo.models.Baseline``)."""
    import importlib

    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def instantiate(node: dict[str, Any], **overrides: Any) -> Any:
    """Build a ``{class_path, init_args}`` node (a packaged or experiment config section), ``overrides`` winning."""
    return import_class(node["class_path"])(**{**(node.get("init_args") or {}), **overrides})


def config_path(group: str, alias: str) -> Path | None:
    """The packaged YAML of ``alias`` in ``group`` (``model`` or ``data``), or None."""
    return _configs(group).get(alias.lower())
