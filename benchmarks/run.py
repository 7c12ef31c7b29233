"""Fit every registered model on one dataset, test the best-on-validation checkpoint, tabulate.

Protocol: each (model, seed) is fitted with its experiment config
(``experiments/<dataset>/<model>.yaml`` when present, else the packaged defaults), the
checkpoint with the best ``val/acc`` is selected, and the test split is evaluated in a
separate single-device process (a distributed sampler can repeat samples). Results are
read from the runs' own report files and written to ``benchmarks/results/<dataset>.{md,csv}``
with per-run curves and reports under ``benchmarks/results/<dataset>/``.

Every seed method (``METHODS``) in the list is followed by its recipe-matched ablation row,
``baseline-<method>-recipe``: the plain baseline trained with that method's own recipe
(optimiser, schedule, label smoothing, sampler, label noise, input size, epochs), so the table
shows what the method adds over its recipe and what the recipe adds over the baseline's
(``--no-recipe-rows`` turns this off). Each fit also tests after every epoch
(``--test_each_epoch``) so the best test epoch, the figure many papers report, is tabulated,
labelled as such; selection stays on validation.

A run whose fit report exists is not re-fitted; an interrupted fit resumes from its
``last.ckpt``. LaCoVL-FER's frozen landmark extractor is pretrained first (``fer-zoo
pretrain-landmarks``, once per dataset, shared by all seeds) unless the config or an
``--override model.init_args.landmark_weights=...`` names weights.

Usage:
    python -m benchmarks.run --dataset synthetic
    python -m benchmarks.run --dataset ferplus --data-root ../shared/data/ferplus --seeds 0 1
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from fer_zoo import registry

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("test/acc", "test/mca", "test/f1_macro")
LANDMARK_NET_CLASSES = ("LaCoVL",)  # model classes with a frozen landmark extractor that must be pretrained
SAME_IMAGES = ("num_train", "num_val", "num_test", "synth_size", "seed", "label_mode")  # data options naming images
RESULTS = ROOT / "benchmarks" / "results"


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


def _model_settings(dataset: str, model: str, overrides: list[str]) -> dict:
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
    method_model = _model_settings(dataset, method, overrides)
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
    settings = _model_settings(dataset, baseline, overrides)
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


def ablation_pair(dataset: str, model: str, models: list[str], overrides: list[str]) -> str | None:
    """The row a method row is compared with: its ``baseline-<model>-recipe`` row, or else a plain baseline row of
    the table trained with exactly its recipe, backbone and init (None for non-method rows or when none is)."""
    if f"baseline-{model}-recipe" in models:
        return f"baseline-{model}-recipe"
    if model.split("-")[0] not in METHODS or not experiment_files(dataset, model):
        return None
    for other in models:
        if other.startswith("baseline") and recipe_method(other) is None and experiment_files(dataset, other):
            if recipe_is_baselines(dataset, model, overrides, baseline=other):
                return other
    return None


def base_args(dataset: str, model: str, data_root: str | None, args: argparse.Namespace | None = None) -> list[str]:
    """CLI arguments selecting the model and data (experiment config when one exists).

    A ``baseline-<method>-recipe`` row without an experiment file of its own gets a config
    written by :func:`recipe_config` next to its runs.
    """
    import yaml

    experiments = experiment_files(dataset, model)
    method = generated_recipe(dataset, model)
    if experiments:
        out = [arg for path in experiments for arg in ("--config", str(path))]
    elif method is not None and args is not None:
        config = recipe_config(dataset, method, args.override)
        path = Path(args.runs) / dataset / model / "recipe.yaml"
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


def _fer_zoo(*args: str) -> list[str]:
    return [sys.executable, "-m", "fer_zoo", *args]


def _portable(cmd: list[str]) -> str:
    return shlex.join(cmd).replace(sys.executable, "python").replace(f"{ROOT}/", "")


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


def landmark_net(dataset: str, model: str, common: list[str], args: argparse.Namespace) -> list[list[str]]:
    """Pretrain the frozen landmark extractor a model needs, unless weights are named.

    Returns:
        The commands that made the weights (empty when none were needed); the fit and test
        arguments that use them are appended to ``common``.
    """
    if not needs_landmark_net(dataset, model):
        return []
    settings = experiment_settings(dataset, model, args.override)
    if settings.get("model.landmark_weights"):
        return []
    out = Path(args.runs) / dataset / "landmark_net"
    cmd = _fer_zoo("pretrain-landmarks", "--data", dataset, "--epochs", str(args.landmark_epochs), "--out", str(out))
    cmd += ["--image_size", str(settings.get("model.landmark_input", 112))]
    if args.data_root:
        cmd += ["--data.root", args.data_root]
    if "data.num_workers" in settings:
        cmd += ["--num_workers", str(settings["data.num_workers"])]
    # Pretrain on the same images the model will see (same generator sizes and seed, same label set).
    same_images = [f"{k[5:]}={v}" for k, v in settings.items() if k[5:] in SAME_IMAGES and k.startswith("data.")]
    if same_images:
        cmd += ["--data_options", *same_images]
    if not (out / "pretrain_report.json").exists():
        run(cmd, out / "pretrain.log")
    results = Path(RESULTS) / dataset / "landmark_net"
    results.mkdir(parents=True, exist_ok=True)
    for name in ("pretrain_report.json", "metrics.csv"):
        if (out / name).exists():
            shutil.copy(out / name, results / name)
    (results / "commands.sh").write_text("# run from the repository root\n" + _portable(cmd) + "\n")
    common += ["--model.landmark_weights", str(out / "landmark_net.pt")]
    return [cmd]


def mean_std(values: pd.Series, scale: float = 100.0) -> str:
    """``"mean ± std"`` over seeds (population std, 2 decimals), of ``values`` times ``scale`` (fractions -> %)."""
    return f"{scale * values.mean():.2f} ± {scale * values.std(ddof=0):.2f}"


def run(cmd: list[str], log: Path) -> None:
    """Run a fer-zoo command, teeing its output to ``log``; raise with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print("$", shlex.join(cmd), flush=True)
    with open(log, "w") as handle:
        handle.write("$ " + shlex.join(cmd) + "\n")
        handle.flush()
        code = subprocess.call(
            cmd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "FER_ZOO_RUN_STAMP": time.strftime("%Y%m%d-%H%M%S")},
        )
    if code != 0:
        tail = log.read_text().splitlines()[-25:]
        raise RuntimeError(f"command failed ({code}): {shlex.join(cmd)}\n" + "\n".join(tail))


def fit_and_test(dataset: str, model: str, seed: int, args: argparse.Namespace) -> dict:
    """Fit (or resume) one model and seed, then test its best checkpoint on one device."""
    run_dir = Path(args.runs) / dataset / model / f"s{seed}"
    method = generated_recipe(dataset, model)
    overrides = scoped(args.override, model, *([method] if method else []))
    common = base_args(dataset, model, args.data_root, args) + override_args(overrides, method is not None)
    setup_cmds = landmark_net(dataset, model, common, args)
    fit_dir, test_dir = run_dir / "fit", run_dir / "test"
    fit_cmd = _fer_zoo("fit", *common, "--seed_everything", str(seed), "--run_dir", str(fit_dir), "--name", model)
    if not args.no_test_each_epoch:
        fit_cmd += ["--test_each_epoch", "true"]
    if args.epochs:
        fit_cmd += ["--trainer.max_epochs", str(args.epochs)]
    if args.devices > 1:
        fit_cmd += ["--trainer.devices", str(args.devices), "--trainer.strategy", "ddp"]
    if not (fit_dir / "fit_report.json").exists():
        last = fit_dir / "checkpoints" / "last.ckpt"
        if last.exists():
            fit_cmd += ["--ckpt_path", str(last)]  # resume an interrupted fit
        run(fit_cmd, run_dir / "fit.log")
    fit = json.loads((fit_dir / "fit_report.json").read_text())
    best = fit["best_model_path"] or fit["last_model_path"]
    test_cmd = _fer_zoo(
        "test",
        *common,
        "--ckpt_path",
        best,
        "--run_dir",
        str(test_dir),
        "--name",
        model,
        "--trainer.devices",
        "1",
        "--trainer.strategy",
        "auto",
    )
    report = test_dir / "test_report.json"
    if args.retest or not report.exists() or report.stat().st_mtime < Path(best).stat().st_mtime:
        run(test_cmd, run_dir / "test.log")
    test = json.loads((test_dir / "test_report.json").read_text())
    publish(dataset, model, seed, fit_dir, test_dir, [*setup_cmds, fit_cmd, test_cmd])
    return table_row(dataset, model, seed, fit, test)


def published_row(dataset: str, model: str, seed: int) -> dict | None:
    """A row from the reports ``publish`` copied under ``benchmarks/results`` (``--from-results``: no run folders);
    None (and a printed note) when that run was not published."""
    folder = Path(RESULTS) / dataset / model / f"s{seed}"
    try:
        fit = json.loads((folder / "fit_report.json").read_text())
        test = json.loads((folder / "test_report.json").read_text())
    except FileNotFoundError as error:
        print(f"--from-results: {error.filename} is missing; {model} seed {seed} is left out of the table", flush=True)
        return None
    return table_row(dataset, model, seed, fit, test)


def table_row(dataset: str, model: str, seed: int, fit: dict, test: dict) -> dict:
    """One table row from a run's fit and test reports."""
    best = fit["best_model_path"] or fit["last_model_path"]
    return {
        "dataset": dataset,
        "model": model,
        "seed": seed,
        **{m.split("/")[1]: test[m] for m in METRICS},
        "best_val_acc": fit["best_score"],
        "best_test_epoch_acc": (fit.get("best_test_epoch") or {}).get("acc"),
        "best_test_epoch": (fit.get("best_test_epoch") or {}).get("epoch"),
        "best_epoch_ckpt": Path(best).name,
        "epochs": fit["epochs"],
        "params_M": fit["params"] / 1e6,
        "train_img_per_s": fit["train_img_per_s"],
        "world_size": fit["world_size"],
        "per_class_acc": test["per_class_acc"],
    }


def run_row(dataset: str, model: str, seed: int, args: argparse.Namespace) -> dict | None:
    """One table row; a recipe row whose recipe is exactly the baseline's reuses the baseline's run."""
    method = generated_recipe(dataset, model)
    source = model
    if method is not None and recipe_is_baselines(dataset, method, args.override):
        print(f"{model}: {method}'s recipe is the baseline's; its row is the baseline run", flush=True)
        source = "baseline"
    row = published_row(dataset, source, seed) if args.from_results else fit_and_test(dataset, source, seed, args)
    return None if row is None else {**row, "model": model}


def relative_checkpoint_paths(report: Path, run_dir: Path) -> None:
    """Rewrite a published report's checkpoint paths relative to its run folder (no machine's absolute paths)."""
    if not report.is_file():
        return
    data = json.loads(report.read_text())
    for key in ("best_model_path", "last_model_path"):
        value = data.get(key)
        if value and Path(value).is_absolute():
            try:
                data[key] = str(Path(value).relative_to(Path(run_dir).resolve()))
            except ValueError:
                data[key] = str(Path("checkpoints") / Path(value).name)
    report.write_text(json.dumps(data, indent=1))


def publish(dataset: str, model: str, seed: int, fit_dir: Path, test_dir: Path, cmds: list[list[str]]) -> None:
    """Copy a run's curves, reports and commands under benchmarks/results/<dataset>/<model>/s<seed>/."""
    out = Path(RESULTS) / dataset / model / f"s{seed}"
    out.mkdir(parents=True, exist_ok=True)
    for src, name in (
        (fit_dir / "metrics.csv", "fit_metrics.csv"),
        (fit_dir / "fit_report.json", "fit_report.json"),
        (test_dir / "test_report.json", "test_report.json"),
        (test_dir / "test_per_class.csv", "test_per_class.csv"),
        (test_dir / "test_confusion_matrix.csv", "test_confusion_matrix.csv"),
        (fit_dir / "lightning_config.yaml", "config.yaml"),
    ):
        if src.exists():
            shutil.copy(src, out / name)
    relative_checkpoint_paths(out / "fit_report.json", fit_dir)
    (out / "commands.sh").write_text("# run from the repository root\n" + "\n".join(map(_portable, cmds)) + "\n")
    plot_curves(out / "fit_metrics.csv", out / "curves.png", f"{model} on {dataset} (seed {seed})")


def plot_curves(metrics_csv: Path, out: Path, title: str) -> None:
    """Training loss and validation accuracy per epoch, from the run's CSV log."""
    if not metrics_csv.exists():
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.read_csv(metrics_csv)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    if "train/loss" in frame:
        loss = frame.dropna(subset=["train/loss"])
        a.plot(loss["step"], loss["train/loss"], lw=0.8)
    a.set(xlabel="step", ylabel="train loss", title="training loss")
    for key in ("val/acc", "val/mca", "train/acc"):
        if key in frame:
            series = frame.dropna(subset=[key])
            b.plot(series["epoch"], series[key], marker="o", label=key)
    b.set(xlabel="epoch", ylabel="accuracy", title="accuracy per epoch")
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _display(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it (for portable notes)."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


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


def peer_rows(dataset: str) -> list[dict]:
    """Peer models measured by ``benchmarks/peers.py`` on this dataset's test split (or none)."""
    path = Path(RESULTS) / "peers" / f"{dataset}.json"
    if not path.exists():
        path = ROOT / "benchmarks" / "results" / "peers" / f"{dataset}.json"
    return json.loads(path.read_text())["peers"] if path.exists() else []


def tabulate(rows: list[dict], dataset: str, args: argparse.Namespace, argv: list[str]) -> str:
    """Write ``<dataset>.csv`` (one row per run) and ``<dataset>.md`` (mean ± std per model)."""
    out = Path(RESULTS)
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "per_class_acc"} for r in rows])
    frame.to_csv(out / f"{dataset}.csv", index=False, float_format="%.4f")
    lines = [
        f"# Benchmark: {dataset}",
        "",
        f"Command: `python -m benchmarks.run {shlex.join(a for a in argv if a != '--from-results')}` "
        + (
            f"(re-tabulated on {time.strftime('%Y-%m-%d')} from the published reports with `--from-results`)."
            if args.from_results
            else f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores"
            f"{', ' + str(args.devices) + ' devices' if args.devices > 1 else ''})."
        ),
        "",
        "Protocol: select the checkpoint with the best validation accuracy; test it once in a separate "
        "single-device run. OA = overall accuracy (micro), MCA = mean class accuracy (macro), "
        "F1 = macro-F1; mean ± std over seeds.",
        "",
        "| model | seeds | OA | MCA | macro-F1 | OA − recipe baseline | best-test-epoch OA † | paper OA ‡ "
        "| params (M) | train img/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    mean_acc = frame.groupby("model", sort=False)["acc"].mean()
    footnotes: dict[str, str] = {}
    for model, group in frame.groupby("model", sort=False):
        entry = paper_entry(dataset, model, label_noise(dataset, model, args.override))
        paper = ""
        if entry is not None:
            mark = footnotes.setdefault(entry["protocol"], f"[{len(footnotes) + 1}]")
            paper = f"{entry['acc']:.2f} {mark}" if entry["acc"] is not None else f"none {mark}"
        fmt = lambda c: mean_std(group[c])
        rate = group["train_img_per_s"].mean()
        speed = "no training" if pd.isna(rate) else f"{rate:.0f}"
        pair = ablation_pair(dataset, model, list(mean_acc.index), args.override)
        delta = ""
        if pair is not None:
            delta = f"{100 * (mean_acc[model] - mean_acc[pair]):+.2f}"
            if pair != f"baseline-{model}-recipe":
                delta += f" (vs {pair})"
        best_test = group.get("best_test_epoch_acc")
        best_test = "" if best_test is None or best_test.isna().all() else fmt("best_test_epoch_acc")
        lines.append(
            f"| {model} | {','.join(map(str, group['seed']))} | {fmt('acc')} | {fmt('mca')} | {fmt('f1_macro')} "
            f"| {delta} | {best_test} | {paper} | {group['params_M'].iloc[0]:.2f} | {speed} |"
        )
    peers = peer_rows(dataset)
    for peer in peers:
        lines.append(
            f"| peer: {peer['name']} | – | {100 * peer['acc']:.2f} | {100 * peer['mca']:.2f} | "
            f"{100 * peer['f1_macro']:.2f} | | | | {peer['params_M']:.2f} | no training |"
        )
    lines += [
        "",
        "`baseline-<method>-recipe`: the plain baseline (same backbone and init) trained with that method's "
        "recipe (optimiser, schedule, sampler, label noise, input size, epochs; SAM is not carried over), so "
        "*OA − recipe baseline* is what the method adds over its recipe; *(vs X)* marks a plain baseline row X of "
        "this table that already has exactly the method's recipe, backbone and init. † Best test accuracy over epochs, the "
        "figure many papers report; never used for selection here (OA is the validation-selected checkpoint).",
        "‡ What the method's paper reports on this dataset at this label-noise rate (`benchmarks/data/papers.yaml`); "
        "its protocol differs from this table's (pretrained backbone, input size, epochs, best-test-epoch selection):",
    ]
    data = __import__("yaml").safe_load(PAPERS.read_text()) if PAPERS.exists() else {}
    lines += [f"- {mark} {data.get('protocols', {}).get(key, key)}" for key, mark in footnotes.items()]
    if peers:
        lines += [
            "",
            "Peer rows: models people install for this job, run on the same test split and scored by the same metric "
            "code (`python -m benchmarks.peers`, `benchmarks/results/peers/`). Their classes are mapped by name "
            "through `fer_zoo.labels`; a class a peer cannot output counts as an error. Peers trained on FER2013 "
            "may have seen images related to FERPlus test (FERPlus relabels FER2013 images).",
        ]
        lines += [f"- {p['name']}: {p['note']}" for p in peers]
    lines += ["", "Per-class test accuracy (%):", ""]
    names = list(rows[0]["per_class_acc"])
    lines += ["| model | seed | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['seed']} | " + " | ".join(f"{100 * r['per_class_acc'][n]:.1f}" for n in names) + " |"
        )
    for peer in peers:
        lines.append(
            f"| peer: {peer['name']} | – | " + " | ".join(f"{100 * peer['per_class_acc'][n]:.1f}" for n in names) + " |"
        )
    lines += [
        "",
        f"Per-run curves, reports, configs and commands: `{_display(out)}/{dataset}/<model>/s<seed>/`.",
        "",
    ]
    if args.note:
        lines += [Path(args.note).read_text().strip(), ""]
    text = "\n".join(lines)
    (out / f"{dataset}.md").write_text(text)
    from benchmarks.report import write_html

    papers = {}
    for model in dict.fromkeys(frame["model"]):
        entry = paper_entry(dataset, model, label_noise(dataset, model, args.override))
        if entry is not None and entry["acc"] is not None:
            papers[model] = entry["acc"]
    page = write_html(out / f"{dataset}.html", f"fer-zoo benchmark: {dataset}", text, rows, peers, papers, out / dataset)
    if not args.from_results:
        from benchmarks.wandb_report import log_benchmark, save_report_if_online

        summary = frame.groupby("model", sort=False)[["acc", "mca", "f1_macro"]].agg(["mean", "std"])
        summary.columns = [f"{a}_{b}" for a, b in summary.columns]
        folder = log_benchmark(dataset, frame, summary.reset_index(), page, Path(args.runs) / dataset / "benchmark")
        url = save_report_if_online(dataset)
        print(f"W&B: benchmark run in {folder}" + (f"; report {url}" if url else " (report saved only when online)"))
    return text


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the benchmark."""
    global RESULTS
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--dataset",
        default="synthetic",
        choices=[d for d in registry.list_datasets() if d != "folder"] + sorted(DATASET_GROUPS),
        help="a dataset, or affectnet for both AffectNet protocols (affectnet7 and affectnet8) in one table",
    )
    p.add_argument(
        "--data-root", default=None, help="dataset root (default: $FER_ZOO_DATA/<name>; not needed for synthetic)"
    )
    p.add_argument("--models", default="all", help="comma-separated aliases, or 'all'")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--devices", type=int, default=1, help="fit devices (DDP when > 1); test always uses 1")
    p.add_argument("--epochs", type=int, default=None, help="override max_epochs")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra CLI option for fit and test, e.g. data.num_train=500 (repeatable); MODEL:KEY=VALUE applies "
        "it to MODEL's rows only (and its recipe keys to a generated baseline-MODEL-recipe row)",
    )
    p.add_argument(
        "--landmark-epochs", type=int, default=5, help="epochs of fer-zoo pretrain-landmarks for LaCoVL's extractor"
    )
    p.add_argument("--retest", action="store_true", help="test again even when a current test report exists")
    p.add_argument(
        "--no-recipe-rows", action="store_true", help="do not add the baseline-<method>-recipe ablation rows"
    )
    p.add_argument(
        "--no-test-each-epoch", action="store_true", help="do not test after each epoch (no best-test-epoch column)"
    )
    p.add_argument(
        "--from-results",
        action="store_true",
        help="re-tabulate from the reports already published under --results (no run folders, no training)",
    )
    p.add_argument("--note", default=None, help="markdown file whose text is appended to the table (provenance)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench"), help="where run folders go")
    p.add_argument(
        "--results",
        default=None,
        help="where tables, curves and reports are written (default: <runs>/results, a work folder; publish into "
        "benchmarks/results/<study> only by naming it here)",
    )
    args = p.parse_args(argv)
    # A user's run never overwrites what is published: only an explicit --results writes into benchmarks/results.
    RESULTS = Path(args.results) if args.results else Path(args.runs) / "results"
    RESULTS.mkdir(parents=True, exist_ok=True)
    datasets = DATASET_GROUPS.get(args.dataset, (args.dataset,))
    roots = {d: data_root(d, args.data_root) for d in datasets}  # every root checked before any training
    indexed = [row for d in datasets for row in (experiment_index(d).get("rows") or {})]
    if args.models == "all":  # a dataset with an experiment index runs its rows (the leaderboard), else every model
        models = list(dict.fromkeys(indexed)) or registry.list_models()
    else:
        models = args.models.split(",")
    if not args.no_recipe_rows:
        paired = [name for m in models for name in (m, f"baseline-{m}-recipe") if name == m or m in METHODS]
        models = list(dict.fromkeys(paired))
    tables = {}
    for dataset in datasets:
        sub = argparse.Namespace(**{**vars(args), "dataset": dataset, "data_root": roots[dataset]})
        rows = [row for m in models for s in args.seeds if (row := run_row(dataset, m, s, sub)) is not None]
        tables[dataset] = rows
        print(tabulate(rows, dataset, sub, argv))
    if len(datasets) > 1:
        print(group_summary(args.dataset, tables, argv))


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
        configured = [f for f in (ROOT / "experiments" / dataset).glob("*.yaml") if "root:" in f.read_text()]
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


def group_summary(group: str, tables: dict[str, list[dict]], argv: list[str]) -> str:
    """One table over a group's protocols (e.g. AffectNet-7 and -8): mean OA / MCA / macro-F1 per model."""
    frames = {d: pd.DataFrame(rows) for d, rows in tables.items()}
    models = list(dict.fromkeys(m for f in frames.values() for m in f["model"]))
    head = " | ".join(f"{d} OA | {d} MCA | {d} F1" for d in frames)
    lines = [
        f"# Benchmark: {group} ({', '.join(frames)})",
        "",
        f"Command: `python -m benchmarks.run {shlex.join(argv)}` ({time.strftime('%Y-%m-%d')}). Mean ± std over "
        "seeds; protocol and per-class figures in each protocol's own table: "
        + ", ".join(f"`{d}.md`" for d in frames)
        + ".",
        "",
        f"| model | {head} |",
        "|---|" + "---|" * (3 * len(frames)),
    ]
    for model in models:
        cells = []
        for frame in frames.values():
            runs = frame[frame["model"] == model]
            for column in ("acc", "mca", "f1_macro"):
                cells.append(mean_std(runs[column]) if len(runs) else "–")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (Path(RESULTS) / f"{group}.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
