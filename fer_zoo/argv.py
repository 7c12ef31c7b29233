"""The ``fer-zoo`` command line before LightningCLI parses it: aliases, default data, the checkpoint's model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fer_zoo import registry
from fer_zoo.checkpoints import read_checkpoint_meta

GROUPS = (("--model", "model"), ("--data", "data"))
RUN_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _class_names(group: str) -> set[str]:
    """Names of the model (FERTask) or data module (FERDataModule) classes the CLI can resolve."""
    from fer_zoo.datamodules import FERDataModule
    from fer_zoo.models import FERTask

    seen, todo = set(), [FERTask if group == "model" else FERDataModule]
    while todo:
        cls = todo.pop()
        seen.add(cls.__name__)
        todo += cls.__subclasses__()
    return seen


def _resolve(flag: str, group: str, value: str) -> str:
    """``value`` of ``--model``/``--data``: an alias becomes its packaged YAML; an unknown name is a one-line error."""
    path = registry.config_path(group, value)
    if path is not None:
        return str(path)
    if value.endswith((".yaml", ".yml", ".json")):
        if not Path(value).is_file():
            raise SystemExit(f"fer-zoo: {flag} {value}: no such file")
        return value
    if "." in value or value.lstrip().startswith("{") or value in _class_names(group):
        return value  # a class path, a class name or inline JSON: LightningCLI resolves it
    names = registry.list_models() if group == "model" else registry.list_datasets()
    raise SystemExit(f"fer-zoo: unknown {flag} {value!r}; one of {', '.join(names)} (or a class path or YAML file)")


def expand_aliases(argv: list[str]) -> list[str]:
    """Rewrite ``--model alias`` / ``--data alias`` (and ``=`` forms) to packaged YAML paths.

    An unknown alias is a one-line error listing the known ones. A run subcommand (fit, validate, test,
    predict) that names no data (no ``--data``, no ``--config`` with a ``data`` section) gets the synthetic
    faces, the set that runs anywhere.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        for flag, group in GROUPS:
            if arg == flag and i + 1 < len(argv):
                out += [flag, _resolve(flag, group, argv[i + 1])]
                i += 2
                break
            if arg.startswith(flag + "="):
                out += [flag, _resolve(flag, group, arg.split("=", 1)[1])]
                i += 1
                break
        else:
            out.append(arg)
            i += 1
    if out and out[0] in RUN_SUBCOMMANDS and not names_data(out):
        out += ["--data", str(registry.config_path("data", "synthetic"))]
    return out


def names_data(argv: list[str]) -> bool:
    """Whether the command line selects a data module: ``--data`` or a ``--config`` with a ``data`` section."""
    import yaml

    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if flag == "--data":
            return True
        if flag in ("--config", "-c"):
            value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            try:
                config = yaml.safe_load(Path(value).read_text()) or {}
            except (OSError, yaml.YAMLError):
                return True  # let the CLI report the unreadable config
            if isinstance(config, dict) and "data" in config:
                return True
    return False


def experiment_name(configs: Any, model: str) -> str:
    """``--config`` file stems joined by ``+`` (``ferplus-face+balanced-softmax``); ``model`` without configs."""
    paths = [str(getattr(c, "absolute", c)) for c in (configs or []) if c is not None]
    return "+".join(Path(p).stem for p in paths) or model


def trained_on_grey_images(class_path: str | None) -> bool:
    """Whether the data module class at ``class_path`` serves grey images (its ``greyscale_images`` attribute)."""
    if not class_path:
        return False
    try:
        return bool(getattr(registry.import_class(class_path), "greyscale_images", False))
    except (ImportError, AttributeError):
        return False


def model_from_checkpoint(argv: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """Check ``--ckpt_path`` first; for test/validate/predict without ``--model``/``--config``, add its model class.

    Returns the command line and the checkpoint's hyper-parameters (None without a checkpoint file), read once.

    Every subcommand (a resumed fit too) gets a one-line error naming a missing, unreadable or
    unsafe checkpoint before any work; the file is read ``weights_only`` (it cannot run code).
    Lightning then fills in the model's options from the checkpoint's hyper-parameters, so
    ``fer-zoo test --data rafdb --ckpt_path X`` needs no ``--model``.
    """
    if not argv or argv[0] not in RUN_SUBCOMMANDS:
        return argv, None
    ckpt = next((a.split("=", 1)[1] for a in argv if a.startswith("--ckpt_path=")), None)
    if "--ckpt_path" in argv and argv.index("--ckpt_path") + 1 < len(argv):
        ckpt = argv[argv.index("--ckpt_path") + 1]
    if ckpt and ckpt not in ("best", "last") and not Path(ckpt).is_file():
        raise SystemExit(f"fer-zoo {argv[0]}: --ckpt_path {ckpt} does not exist")
    if not ckpt or not Path(ckpt).is_file():
        return argv, None
    try:
        meta = read_checkpoint_meta(ckpt)
        class_path = meta["hyper_parameters"].get("_class_path")
    except ValueError as error:
        raise SystemExit(f"fer-zoo {argv[0]}: --ckpt_path {error}") from None
    requested = requested_model_class(argv)
    saved_name, asked_name = (c.split(".")[-1] if c else None for c in (class_path, requested))
    if saved_name and asked_name and saved_name != asked_name:
        # Lightning's CLI would silently build the checkpoint's model instead of the one asked for.
        raise SystemExit(
            f"fer-zoo {argv[0]}: --ckpt_path {ckpt} holds a {saved_name} checkpoint, but the model asked for is "
            f"{asked_name}; pass a checkpoint of that model, or leave out --model/--config to use the checkpoint's own"
        )
    flags = {a.split("=", 1)[0] for a in argv}
    if argv[0] == "fit" or flags & {"--model", "--config", "-c"}:
        return argv, meta
    return ([*argv, "--model", class_path] if class_path else argv), meta


def requested_model_class(argv: list[str]) -> str | None:
    """The model class the command line asks for.

    The last ``--model`` (alias, YAML or class) or ``--config`` that names one, left to right as the CLI composes them; None when none does.
    """
    import yaml

    def from_yaml(path: Path, nested: bool) -> str | None:
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        section = config.get("model") if nested else config
        return section.get("class_path") if isinstance(section, dict) else None

    found = None
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        if flag == "--model" and value:
            packaged = registry.config_path("model", value)
            if packaged is not None:
                found = from_yaml(packaged, nested=False)
            elif value.endswith((".yaml", ".yml")):
                found = from_yaml(Path(value), nested=False)
            else:
                found = value
        elif flag in ("--config", "-c") and value:  # left to right, as the CLI composes them
            found = from_yaml(Path(value), nested=True) or found
    return found
