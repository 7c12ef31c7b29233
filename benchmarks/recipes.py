"""Experiment rows: which configs make a row, its effective config, and the recipe-matched ablation rows.

A row of ``experiments/<dataset>/index.yaml`` (or a stand-alone ``experiments/<dataset>/<row>.yaml``, or a packaged
alias) names the configs that make it; jsonargparse resolves them (:func:`experiment_config`), never a hand merge.
A ``baseline-<method>-recipe`` row is the plain baseline trained with ``method``'s recipe (:func:`recipe_config`);
:func:`ablation_pair` finds the row a method row is compared with.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from benchmarks.paths import ROOT
from fer_zoo import registry

LANDMARK_NET_CLASSES = ("LaCoVL",)  # model classes with a frozen landmark extractor that must be pretrained
SAME_IMAGES = ("num_train", "num_val", "num_test", "synth_size", "seed", "label_mode")  # data options naming images

METHODS = ("e2n", "lanet", "lacovl", "mpa")  # seed methods paired with a recipe-matched baseline row
# Model options that make up an optimisation recipe (FERTask's), carried into the recipe-matched baseline.
RECIPE_KEYS = (
    "optimizer",
    "lr",
    "weight_decay",
    "momentum",
    "nesterov",
    "cycle_momentum",
    "scheduler",
    "warmup_pct",
    "lr_gamma",
    "label_smoothing",
)
# Data options only a method's extra inputs need: the baseline would load them for nothing.
METHOD_ONLY_DATA = ("positive_pairs",)


def experiment_file(dataset: str, model: str) -> Path:
    """Where a stand-alone experiment config of ``model`` on ``dataset`` lives (it may not exist)."""
    return ROOT / "experiments" / dataset / f"{model}.yaml"


def experiment_index(dataset: str) -> dict:
    """``experiments/<dataset>/index.yaml`` ({} when the dataset has none)."""
    import yaml

    index = ROOT / "experiments" / dataset / "index.yaml"
    return (yaml.safe_load(index.read_text()) or {}) if index.is_file() else {}


def experiment_files(dataset: str, model: str) -> list[Path]:
    """The configs that make row ``model``, composed left to right: the index's entry, else the stand-alone file."""
    row = (experiment_index(dataset).get("rows") or {}).get(model)
    if row is not None:
        return [ROOT / "experiments" / dataset / name for name in row["configs"]]
    experiment = experiment_file(dataset, model)
    return [experiment] if experiment.is_file() else []


def experiment_config(dataset: str, model: str, overrides: tuple[str, ...] = ()) -> dict:
    """The effective fit config of row ``model`` on ``dataset``, as jsonargparse resolves it ({} for a row with
    neither configs nor a packaged alias, e.g. a generated recipe row). ``overrides`` are ``KEY=VALUE`` items."""
    if not experiment_files(dataset, model) and registry.config_path("model", model) is None:
        return {}
    return _resolved(tuple(base_args(dataset, model, None) + override_args(list(overrides))))


@functools.cache
def _resolved(args: tuple[str, ...]) -> dict:
    from fer_zoo.cli import resolved_config

    return resolved_config(list(args))


def recipe_method(model: str) -> str | None:
    """The method whose recipe a ``baseline-<method>-recipe`` row borrows (None for other names)."""
    if model.startswith("baseline-") and model.endswith("-recipe"):
        return model[len("baseline-") : -len("-recipe")]
    return None


def generated_recipe(dataset: str, model: str) -> str | None:
    """The method of a ``baseline-<method>-recipe`` row whose config is generated (no experiment file of its own)."""
    method = recipe_method(model)
    return method if method is not None and not experiment_files(dataset, model) else None


def scoped(overrides: list[str], *models: str) -> list[str]:
    """The ``KEY=VALUE`` overrides that apply to ``models``.

    ``--override KEY=VALUE`` applies to every row; ``--override MODEL:KEY=VALUE`` only to the
    rows of ``MODEL`` (e.g. ``lanet:model.init_args.heatmap_stride=2``, an option the baseline
    rows do not have). The scope is stripped.
    """
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        scope, colon, bare = key.partition(":")
        if not colon:
            out.append(item)
        elif scope in models:
            out.append(f"{bare}{sep}{value}")
    return out


def model_settings(dataset: str, model: str, overrides: list[str]) -> dict:
    """A row's effective model init args (class defaults, packaged YAML, experiment configs, overrides)."""
    accepted = set(((experiment_config(dataset, model).get("model") or {}).get("init_args")) or {})
    # an unscoped --override reaches every row; a row whose class lacks the option (a baseline has no 'pyramid')
    # ignores it (a generated recipe row drops such options from its fit command too)
    model_overrides = tuple(
        o for o in scoped(overrides, model)
        if o.partition("=")[0].startswith("model.") and o.partition("=")[0].split(".")[-1] in accepted
    )
    config = experiment_config(dataset, model, model_overrides)
    return dict(((config.get("model") or {}).get("init_args")) or {})


def recipe_config(dataset: str, method: str, overrides: list[str]) -> dict:
    """Config of the plain baseline trained with ``method``'s recipe on ``dataset``.

    The method's experiment config (or packaged defaults) gives the trainer section, the data
    section (less ``METHOD_ONLY_DATA``) and the recipe keys of its model section (FERTask's
    defaults where neither sets one); the model is the baseline's (its packaged defaults for
    everything else, e.g. ResNet-18, no dropout), with the method's backbone (LaCoVL: its image
    pyramid) and weights when the baseline can build it. Model overrides that are not recipe keys (a
    method's width, its CLIP) are left out.
    """
    from fer_zoo.models.components.backbones import BACKBONES

    config = experiment_config(dataset, method)
    method_model = model_settings(dataset, method, overrides)
    init_args = {k: method_model[k] for k in RECIPE_KEYS if k in method_model}
    backbone = method_model.get("backbone", method_model.get("pyramid"))  # LaCoVL's trainable network is its pyramid
    if backbone in BACKBONES:  # the baseline can build it (ResNets, the imported face networks)
        init_args["backbone"] = backbone
        if method_model.get("weights"):
            init_args["weights"] = method_model["weights"]
    out: dict = {"model": {"class_path": "fer_zoo.models.Baseline", "init_args": init_args}}
    for key in ("seed_everything", "trainer"):
        if key in config:
            out[key] = config[key]
    if "data" in config:
        data = dict(config["data"])
        data["init_args"] = {k: v for k, v in (data.get("init_args") or {}).items() if k not in METHOD_ONLY_DATA}
        out["data"] = data
    return out


#: Data options that only feed a method's extra inputs; they do not change the recipe a baseline row shares.
METHOD_INPUT_DATA = (*METHOD_ONLY_DATA, "landmarks", "landmark_layout")


def recipe_is_baselines(dataset: str, method: str, overrides: list[str], baseline: str = "baseline") -> bool:
    """Whether ``method``'s recipe, backbone and init are exactly those of the row ``baseline``.

    Then that row is the method's ablation row (the same network start, optimiser, schedule, data and
    budget, without the method), e.g. ``baseline-faceres`` for ``e2n-faceres``.
    """
    recipe = recipe_config(dataset, method, overrides)
    settings = model_settings(dataset, baseline, overrides)
    ours = {k: settings.get(k) for k in recipe["model"]["init_args"]}
    ours.setdefault("backbone", settings.get("backbone"))
    theirs = {**recipe["model"]["init_args"]}
    theirs.setdefault("backbone", settings.get("backbone"))
    if ours != theirs or settings.get("weights") != theirs.get("weights"):
        return False
    config = experiment_config(dataset, baseline)

    def data(section: dict | None) -> dict:
        init = dict((section or {}).get("init_args") or {})
        return {k: v for k, v in init.items() if k not in METHOD_INPUT_DATA}

    return recipe.get("trainer") == config.get("trainer") and data(recipe.get("data")) == data(config.get("data"))


def index_baseline(dataset: str, model: str) -> str | None:
    """The row an index entry names as its ``baseline:`` (its protocol without the row's delta), or None."""
    return ((experiment_index(dataset).get("rows") or {}).get(model) or {}).get("baseline")


def ablation_pair(dataset: str, model: str, models: list[str], overrides: list[str]) -> str | None:
    """The row a method row is compared with: its ``baseline-<model>-recipe`` row, else the ``baseline:`` its index
    entry names, else a plain baseline row of the table trained with exactly its recipe, backbone and init (None for
    non-method rows or when none is in ``models``)."""
    if f"baseline-{model}-recipe" in models:
        return f"baseline-{model}-recipe"
    named = index_baseline(dataset, model)
    if named in models:
        return named
    if model.split("-")[0] not in METHODS or not experiment_files(dataset, model):
        return None
    for other in models:
        if other.startswith("baseline") and recipe_method(other) is None and experiment_files(dataset, other):
            if recipe_is_baselines(dataset, model, overrides, baseline=other):
                return other
    return None


def base_args(
    dataset: str, model: str, data_root: str | None, runs: Path | None = None, overrides: list[str] = ()
) -> list[str]:
    """CLI arguments selecting the model and data (experiment config when one exists).

    A ``baseline-<method>-recipe`` row without an experiment file of its own gets a config
    written by :func:`recipe_config` under ``runs`` (with ``overrides`` applied to the method's settings).
    """
    import yaml

    experiments = experiment_files(dataset, model)
    method = generated_recipe(dataset, model)
    if experiments:
        out = [arg for path in experiments for arg in ("--config", str(path))]
    elif method is not None and runs is not None:
        config = recipe_config(dataset, method, list(overrides))
        path = Path(runs) / dataset / model / "recipe.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"# The baseline trained with {method}'s recipe (written by benchmarks.run)\n" + yaml.safe_dump(config)
        )
        out = ["--config", str(path)] + ([] if "data" in config else ["--data", dataset])
    else:
        out = ["--model", model, "--data", dataset]
    if data_root:
        out += ["--data.root", data_root]
    return out


def override_args(overrides: list[str], generated_recipe: bool = False) -> list[str]:
    """Turn ``KEY=VALUE`` overrides into ``--KEY VALUE`` CLI arguments.

    For a generated ``baseline-<method>-recipe`` row (``generated_recipe``) only data, trainer and recipe-key model
    overrides are kept (the method's own model options do not apply to the baseline).
    """
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--override expects KEY=VALUE (e.g. data.num_train=500), got {item!r}")
        if generated_recipe and key.startswith("model.") and key.split(".")[-1] not in RECIPE_KEYS:
            continue
        out += [f"--{key}", value]
    return out


def experiment_settings(dataset: str, model: str, overrides: list[str]) -> dict[str, object]:
    """The experiment config's model and data options as ``{"model.x": v, "data.y": v}``, overrides applied."""
    config = experiment_config(dataset, model)
    settings = {}
    for group in ("model", "data"):
        section = config.get(group) or {}
        for key, value in (section.get("init_args") or {}).items():
            settings[f"{group}.{key}"] = value
    for item in scoped(overrides, model):
        key, _, value = item.partition("=")
        settings[key.replace(".init_args.", ".")] = value
    return settings


def needs_landmark_net(dataset: str, model: str) -> bool:
    """Whether the model class the row's fit would build (so ``lacovl-faceres`` counts, whatever its name) has a
    frozen landmark extractor; the class is resolved from the row's CLI arguments as ``fer-zoo`` resolves it."""
    from fer_zoo.argv import requested_model_class

    class_path = requested_model_class(base_args(dataset, model, None)) or ""
    return class_path.rpartition(".")[2] in LANDMARK_NET_CLASSES


PAPERS = ROOT / "benchmarks" / "data" / "papers.yaml"


def label_noise(dataset: str, model: str, overrides: list[str]) -> float:
    """The training label-noise rate of a row (its experiment config, then the overrides)."""
    import yaml

    rate = ((experiment_config(dataset, model).get("data") or {}).get("init_args") or {}).get("label_noise", 0.0)
    for item in scoped(overrides, model):
        key, _, value = item.partition("=")
        if key.replace(".init_args.", ".") == "data.label_noise":
            rate = yaml.safe_load(value)
    return float(rate or 0.0)


def paper_entry(dataset: str, model: str, noise: float, papers: Path = PAPERS) -> dict | None:
    """The paper's number for ``model`` on ``dataset`` at label-noise ``noise`` (from ``papers.yaml``), or None.

    An entry with ``acc: null`` says the paper gives no number (its protocol note says why).
    """
    import yaml

    if not papers.exists():
        return None
    data = yaml.safe_load(papers.read_text())
    for entry in data.get("results", []):
        if entry["model"] != model or entry["dataset"] not in (dataset, "any"):
            continue
        if entry["noise"] == "any" or abs(float(entry["noise"]) - noise) < 1e-9:
            return {**entry, "protocol_text": data.get("protocols", {}).get(entry["protocol"], "")}
    return None


#: names users type for several standard protocols, run into one summary table
DATASET_GROUPS = {"affectnet": ("affectnet7", "affectnet8")}
#: folder name under $FER_ZOO_DATA, and the index file whose absence means "no dataset here"
DATA_LAYOUTS = {
    "ferplus": ("ferplus", "fer2013new.csv", "fer_zoo.datasets.ferplus"),
    "rafdb": ("rafdb", "EmoLabel/list_patition_label.txt", "fer_zoo.datasets.rafdb"),
    "affectnet7": ("affectnet", "Manually_Annotated_file_lists/training.csv", "fer_zoo.datasets.affectnet"),
    "affectnet8": ("affectnet", "Manually_Annotated_file_lists/training.csv", "fer_zoo.datasets.affectnet"),
}


def data_home() -> Path:
    """``$FER_ZOO_DATA``, the default place of datasets (default ``$FER_ZOO_HOME/data``)."""
    from fer_zoo.weights import home

    return Path(os.environ.get("FER_ZOO_DATA") or home() / "data").expanduser()


def data_root(dataset: str, given: str | None) -> str | None:
    """The root to use for ``dataset``: ``given``, else ``$FER_ZOO_DATA/<name>``, else the experiment configs' own.

    Raises:
        SystemExit: (no traceback) naming the folder looked for, the expected layout and how to point at it.
    """
    if dataset not in DATA_LAYOUTS:
        return given  # synthetic (generated) or a folder dataset
    folder, index, module = DATA_LAYOUTS[dataset]
    default = data_home() / folder
    if given is None and not (default / index).is_file():
        configured = [f for f in (ROOT / "experiments" / dataset).rglob("*.yaml") if "root:" in f.read_text()]
        if configured:
            return None  # experiments/<dataset>/*.yaml name their root (e.g. ../shared/data/ferplus)
    root = Path(given).expanduser() if given else default
    if (root / index).is_file():
        return str(root)
    import importlib

    layout = importlib.import_module(module).LAYOUT
    group = next((g for g, members in DATASET_GROUPS.items() if dataset in members), dataset)
    raise SystemExit(
        f"benchmarks.run: no {dataset} dataset at {root} (looked for {root / index}).\n"
        f"Expected layout:\n{layout}\n"
        f"Point at it with `make bench DATASET={group} DATA_ROOT=/path/to/{folder}` (or --data-root), or put it at "
        f"$FER_ZOO_DATA/{folder} (FER_ZOO_DATA is now {data_home()}). Datasets are never downloaded."
    )
