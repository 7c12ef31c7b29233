"""Fit every row of a dataset's experiment index (or every registered model), test the best-on-validation
checkpoint, tabulate. A thin CLI over :mod:`benchmarks.recipes` (which configs make a row), :mod:`benchmarks.tables`
(rows and Markdown) and :mod:`benchmarks.publish` (copies into a study folder, W&B).

Protocol: each (row, seed) is fitted with its configs (``experiments/<dataset>/index.yaml``, else
``experiments/<dataset>/<row>.yaml``, else the packaged defaults); the checkpoint with the best ``val/acc`` is
selected and the test split is evaluated in a separate single-device process (a distributed sampler can repeat
samples). Results are read from the runs' own report files; tables go to ``<results>/<dataset>.{md,csv}`` and each
run's reports to ``<results>/runs/<dataset>/<row>/s<seed>/``. ``--results`` defaults to ``<runs>/results`` (a work
folder): only an explicit ``--results benchmarks/results/<study>`` publishes.

Every seed method (``recipes.METHODS``) in the list is followed by its recipe-matched ablation row,
``baseline-<method>-recipe``: the plain baseline trained with that method's own recipe (optimiser, schedule, label
smoothing, sampler, label noise, input size, epochs), so the table shows what the method adds over its recipe
(``--no-recipe-rows`` turns this off). Each fit also tests after every epoch (``--test_each_epoch``) so the best test
epoch, the figure many papers report, is tabulated, labelled as such; selection stays on validation.

A run whose fit report exists is not re-fitted; an interrupted fit resumes from its ``last.ckpt``. LaCoVL-FER's
frozen landmark extractor is pretrained first (``fer-zoo pretrain-landmarks``, once per dataset, shared by all
seeds) unless the config or an ``--override model.init_args.landmark_weights=...`` names weights.

Usage:
    python -m benchmarks.run --dataset synthetic
    python -m benchmarks.run --dataset ferplus --data-root ../shared/data/ferplus --models face-baseline --seeds 0 1
    python -m benchmarks.run ... --results benchmarks/results/<study> --from-results   # re-tabulate, no training
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.paths import ROOT
from benchmarks.publish import fer_zoo_cmd, log_to_wandb, portable, publish_run
from benchmarks.recipes import (
    DATASET_GROUPS,
    METHODS,
    SAME_IMAGES,
    base_args,
    data_root,
    experiment_index,
    experiment_settings,
    generated_recipe,
    needs_landmark_net,
    override_args,
    recipe_is_baselines,
    scoped,
)
from benchmarks.tables import group_summary, published_row, run_folder, table_row, tabulate
from fer_zoo import registry


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


def same_images_args(settings: dict[str, object]) -> list[str]:
    """``--data_options`` naming the row's image set (generator sizes and seed, label set), for its setup commands."""
    options = [f"{k[5:]}={v}" for k, v in settings.items() if k.startswith("data.") and k[5:] in SAME_IMAGES]
    return ["--data_options", *options] if options else []


def mediapipe_landmarks(dataset: str, settings: dict[str, object], args: argparse.Namespace) -> list[list[str]]:
    """Detect the MediaPipe landmarks a row reads (``data.landmarks: mediapipe``) on the row's own image set.

    ``fer-zoo landmarks`` skips a split whose cache is current, so every seed runs it and only the first pays.

    Args:
        dataset: Dataset name.
        settings: The row's experiment settings (``experiment_settings``).
        args: The runner's arguments (``data_root``, ``runs``; the report is copied under ``results``).

    Returns:
        The command (empty when the row reads no MediaPipe landmarks).
    """
    if settings.get("data.landmarks") != "mediapipe":
        return []
    report = Path(args.runs) / dataset / "mediapipe_landmarks.json"
    cmd = fer_zoo_cmd("landmarks", "--data", dataset, *same_images_args(settings), "--report", str(report))
    if args.data_root:
        cmd += ["--data.root", args.data_root]
    run(cmd, report.with_suffix(".log"))
    published = Path(args.results) / "runs" / dataset
    published.mkdir(parents=True, exist_ok=True)
    shutil.copy(report, published / report.name)  # the detection figures, with the run that measured them
    return [cmd]


def landmark_net(
    dataset: str, model: str, settings: dict[str, object], common: list[str], args: argparse.Namespace
) -> list[list[str]]:
    """Pretrain the frozen landmark extractor a model needs, unless weights are named.

    Returns:
        The commands that made the weights (empty when none were needed); the fit and test
        arguments that use them are appended to ``common``.
    """
    if not needs_landmark_net(dataset, model):
        return []
    if settings.get("model.landmark_weights"):
        return []
    out = Path(args.runs) / dataset / "landmark_net"
    cmd = fer_zoo_cmd("pretrain-landmarks", "--data", dataset, "--epochs", str(args.landmark_epochs), "--out", str(out))
    cmd += ["--image_size", str(settings.get("model.landmark_input", 112))]
    if args.data_root:
        cmd += ["--data.root", args.data_root]
    if "data.num_workers" in settings:
        cmd += ["--num_workers", str(settings["data.num_workers"])]
    cmd += same_images_args(settings)  # pretrain on the images the model will see
    if not (out / "pretrain_report.json").exists():
        run(cmd, out / "pretrain.log")
    published = Path(args.results) / "runs" / dataset / "landmark_net"
    published.mkdir(parents=True, exist_ok=True)
    for name in ("pretrain_report.json", "metrics.csv"):
        if (out / name).exists():
            shutil.copy(out / name, published / name)
    (published / "commands.sh").write_text("# run from the repository root\n" + portable(cmd) + "\n")
    common += ["--model.landmark_weights", str(out / "landmark_net.pt")]
    return [cmd]


def fit_and_test(dataset: str, model: str, seed: int, args: argparse.Namespace) -> dict:
    """Fit (or resume) one model and seed, then test its best checkpoint on one device; publish its reports."""
    run_dir = Path(args.runs) / dataset / model / f"s{seed}"
    method = generated_recipe(dataset, model)
    overrides = scoped(args.override, model, *([method] if method else []))
    common = base_args(dataset, model, args.data_root, args.runs, args.override)
    common += override_args(overrides, method is not None)
    settings = experiment_settings(dataset, model, args.override)
    setup_cmds = mediapipe_landmarks(dataset, settings, args) + landmark_net(dataset, model, settings, common, args)
    fit_dir, test_dir = run_dir / "fit", run_dir / "test"
    fit_cmd = fer_zoo_cmd("fit", *common, "--seed_everything", str(seed), "--run_dir", str(fit_dir), "--name", model)
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
    test_cmd = fer_zoo_cmd("test", *common, "--ckpt_path", best, "--run_dir", str(test_dir), "--name", model,
                           "--trainer.devices", "1", "--trainer.strategy", "auto")  # fmt: skip
    report = test_dir / "test_report.json"
    if args.retest or not report.exists() or report.stat().st_mtime < Path(best).stat().st_mtime:
        run(test_cmd, run_dir / "test.log")
    test = json.loads((test_dir / "test_report.json").read_text())
    publish_run(run_folder(args.results, dataset, model, seed), fit_dir, test_dir, [*setup_cmds, fit_cmd, test_cmd])
    return table_row(dataset, model, seed, fit, test)


def run_row(dataset: str, model: str, seed: int, args: argparse.Namespace) -> dict | None:
    """One table row; a recipe row whose recipe is exactly the baseline's reuses the baseline's run."""
    method = generated_recipe(dataset, model)
    source = model
    if method is not None and recipe_is_baselines(dataset, method, args.override):
        print(f"{model}: {method}'s recipe is the baseline's; its row is the baseline run", flush=True)
        source = "baseline"
    if args.from_results:
        row = published_row(args.results, dataset, source, seed)
    else:
        row = fit_and_test(dataset, source, seed, args)
    return None if row is None else {**row, "model": model}


def default_rows(dataset: str) -> list[str]:
    """What ``--models all`` runs on ``dataset``: its index's leaderboard study rows when the index names one, else
    every index row (empty without an index: then every registered model)."""
    index = experiment_index(dataset)
    rows = index.get("rows") or {}
    study = index.get("leaderboard")
    return [name for name, row in rows.items() if study is None or row.get("study") == study]


def parser() -> argparse.ArgumentParser:
    """The runner's command line."""
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
    p.add_argument("--models", default="all", help="comma-separated rows or aliases, or 'all' (the index's rows)")
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
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench"), help="where run folders go")
    p.add_argument(
        "--results",
        default=None,
        help="where tables and run reports are written (default: <runs>/results, a work folder; publish into "
        "benchmarks/results/<study> only by naming it here; notes go in that folder's NOTES.md)",
    )
    return p


def main(argv: list[str] | None = None) -> dict[str, list[dict]]:
    """Parse arguments, run (or re-tabulate) every row and seed, write the tables; return the rows per dataset."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    # A user's run never overwrites what is published: only an explicit --results writes into benchmarks/results.
    args.results = Path(args.results) if args.results else Path(args.runs) / "results"
    args.results.mkdir(parents=True, exist_ok=True)
    datasets = DATASET_GROUPS.get(args.dataset, (args.dataset,))
    # every root checked before any training (re-tabulating reads reports only)
    roots = {d: args.data_root if args.from_results else data_root(d, args.data_root) for d in datasets}
    indexed = [row for d in datasets for row in default_rows(d)]
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
        print(tabulate(rows, dataset, args.results, sub, argv))
        if not args.from_results:
            log_to_wandb(dataset, rows, Path(args.runs) / dataset / "benchmark")
    if len(datasets) > 1:
        print(group_summary(args.dataset, tables, argv, args.results))
    return tables


if __name__ == "__main__":
    main()
