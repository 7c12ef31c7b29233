"""Tables: one row per run from its reports, then ``<dataset>.md`` / ``.csv`` per study and group summaries.

Everything here reads reports and writes text; nothing trains. The same code tabulates fresh runs and, with
``benchmarks.run --from-results``, the reports published under ``benchmarks/results/<study>/runs/``, so a committed
table regenerates identically (its Command line carries no date).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from pathlib import Path

import pandas as pd

from benchmarks.paths import RESULTS, ROOT
from benchmarks.recipes import PAPERS, ablation_pair, index_baseline, label_noise, paper_entry

METRICS = ("test/acc", "test/mca", "test/f1_macro")


def mean_std(values: pd.Series, scale: float = 100.0) -> str:
    """``"mean ± std"`` over seeds (population std, 2 decimals), of ``values`` times ``scale`` (fractions -> %)."""
    return f"{scale * values.mean():.2f} ± {scale * values.std(ddof=0):.2f}"


def seed_spread(n: int, std: float, n_pair: int, std_pair: float) -> str:
    """``[std a / b]``: two rows' seed std of OA (fractions -> %), or ``[seeds n / m]`` while either has one seed."""
    if min(n, n_pair) < 2:
        return f"[seeds {n} / {n_pair}]"
    return f"[std {100 * std:.2f} / {100 * std_pair:.2f}]"


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


def run_folder(results: Path, dataset: str, model: str, seed: int) -> Path:
    """Where a run's published reports live: ``<results>/runs/<dataset>/<model>/s<seed>``."""
    return Path(results) / "runs" / dataset / model / f"s{seed}"


def published_row(results: Path, dataset: str, model: str, seed: int) -> dict | None:
    """A row from the reports published under ``results`` (``--from-results``: no run folders); None (and a
    printed note) when that run was not published."""
    folder = run_folder(results, dataset, model, seed)
    try:
        fit = json.loads((folder / "fit_report.json").read_text())
        test = json.loads((folder / "test_report.json").read_text())
    except FileNotFoundError as error:
        print(f"--from-results: {error.filename} is missing; {model} seed {seed} is left out of the table", flush=True)
        return None
    return table_row(dataset, model, seed, fit, test)


def peer_rows(dataset: str) -> list[dict]:
    """Peer models measured by ``benchmarks/peers.py`` on this dataset's test split (or none)."""
    path = RESULTS / "peers" / f"{dataset}.json"
    return json.loads(path.read_text())["peers"] if path.exists() else []


def display(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it (for portable notes)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def command_line(argv: list[str], from_results: bool, devices: int) -> str:
    """The table's ``Command:`` line: the runner's own arguments (``--from-results`` dropped), and where the figures
    came from. No date, so a re-tabulation of unchanged reports is byte-identical."""
    shown = shlex.join(a for a in argv if a != "--from-results")
    if from_results:
        where = "tabulated from the run reports under `runs/` with `--from-results`"
    else:
        where = f"{os.cpu_count()} CPU cores" + (f", {devices} devices" if devices > 1 else "")
    return f"Command: `python -m benchmarks.run {shown}` ({where})."


def tabulate(rows: list[dict], dataset: str, results: Path, args: argparse.Namespace, argv: list[str]) -> str:
    """Write ``<results>/<dataset>.csv`` (one row per run) and ``<dataset>.md`` (mean ± std per model); return the
    Markdown. ``args`` are the runner's (``override``, ``from_results``, ``devices``)."""
    out = Path(results)
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "per_class_acc"} for r in rows])
    frame.to_csv(out / f"{dataset}.csv", index=False, float_format="%.4f")
    lines = [
        f"# Benchmark: {dataset}",
        "",
        command_line(argv, args.from_results, args.devices),
        "",
        "Protocol: select the checkpoint with the best validation accuracy; test it once in a separate "
        "single-device run. OA = overall accuracy (micro), MCA = mean class accuracy (macro), "
        "F1 = macro-F1; mean ± std over seeds.",
        "",
        "| model | seeds | OA | MCA | macro-F1 | OA − recipe baseline | best-test-epoch OA † | paper OA ‡ "
        "| params (M) | train img/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_model = frame.groupby("model", sort=False)["acc"]
    mean_acc, std_acc, n_seeds = by_model.mean(), by_model.std(ddof=0), by_model.count()
    footnotes: dict[str, str] = {}
    indexed_pairs = False
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
            if pair == index_baseline(dataset, model):
                indexed_pairs = True
                delta += " " + seed_spread(n_seeds[model], std_acc[model], n_seeds[pair], std_acc[pair])
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
        *(["In an indexed study, *(vs X)* is the row its `experiments/<dataset>/index.yaml` entry names as "
           "`baseline:` (its protocol without the row's delta), with the two rows' seed std of OA beside it "
           "(their seed counts while either has one): a difference inside the spread is not a finding."] if indexed_pairs else []),
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
        f"Per-run reports, configs and commands: `{display(out)}/runs/{dataset}/<model>/s<seed>/`; plots and an "
        "HTML page: `make report`.",
        "",
    ]
    if (out / "NOTES.md").is_file():
        lines += ["Notes on these runs: [NOTES.md](NOTES.md).", ""]
    text = "\n".join(lines)
    (out / f"{dataset}.md").write_text(text)
    return text


def group_summary(group: str, tables: dict[str, list[dict]], argv: list[str], results: Path) -> str:
    """One table over a group's protocols (e.g. AffectNet-7 and -8): mean OA / MCA / macro-F1 per model."""
    frames = {d: pd.DataFrame(rows) for d, rows in tables.items()}
    models = list(dict.fromkeys(m for f in frames.values() for m in f["model"]))
    head = " | ".join(f"{d} OA | {d} MCA | {d} F1" for d in frames)
    lines = [
        f"# Benchmark: {group} ({', '.join(frames)})",
        "",
        f"Command: `python -m benchmarks.run {shlex.join(argv)}`. Mean ± std over "
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
    (Path(results) / f"{group}.md").write_text(text)
    return text
