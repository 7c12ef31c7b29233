"""Training speed per method: ``fer-zoo fit`` img/s against a bare PyTorch loop of the same network, in one run.

For each experiment row and each setting (fp32; channels-last; channels-last + bf16 autocast) it measures

* the **bare loop**: the row's model (given the training set's state by ``prepare_fit``) and its own
  ``training_loss`` on batches taken from the row's data module beforehand (no loader, no Lightning), ``backward``,
  an AdamW step and the model's ``on_train_batch_end`` (LA-Net's momentum encoder and queue);
* the **fit**: ``fer-zoo fit`` with the row's configs for ``--batches`` training batches and no validation
  (``train_img_per_s`` of its report: the loader, Lightning's loop, logging and callbacks included).

``fit / best bare`` is the share of the fastest bare loop that the zoo's fit keeps. Measured one job at a time
(nothing else training on the machine). Usage::

    python -m benchmarks.speed --dataset ferplus --data-root ../shared/data/ferplus \\
        --rows face-baseline --out benchmarks/results/speed/ferplus.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.paths import ROOT
from benchmarks.publish import finish_report
from benchmarks.recipes import experiment_config, experiment_files
from fer_zoo.registry import instantiate

#: (name, channels_last, bf16 autocast)
SETTINGS = (("fp32", False, False), ("channels-last", True, False), ("channels-last + bf16", True, True))


def to_memory_format(batch: dict[str, Any], channels_last: bool) -> dict[str, Any]:
    """The batch with its image tensors in channels-last (or contiguous) memory format."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {k: v.contiguous(memory_format=fmt) if isinstance(v, torch.Tensor) and v.ndim == 4 else v for k, v in batch.items()}


def row_batches(config: dict[str, Any], data_root: str | None, count: int) -> tuple[Any, list[dict[str, Any]]]:
    """The row's training data module (set up for fit) and its first ``count`` training batches."""
    data_spec = config["data"]
    if data_root:
        data_spec = {**data_spec, "init_args": {**data_spec["init_args"], "root": data_root}}
    datamodule = instantiate(data_spec)
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    return datamodule, [next(loader) for _ in range(count)]


def bare_loop(config: dict[str, Any], data_root: str | None, batches: int, seconds: float,
              wanted: set[str] | None = None) -> dict[str, float]:
    """img/s of the bare loop for each wanted setting (default: all).

    Warm-up: 3 steps; then up to ``batches`` steps or ``seconds`` of timed compute.
    """
    datamodule, taken = row_batches(config, data_root, min(batches, 12) + 3)
    rates = {}
    for name, channels_last, bf16 in SETTINGS:
        if wanted is not None and name not in wanted:
            continue
        torch.manual_seed(0)
        model = instantiate(config["model"], num_classes=datamodule.num_classes, class_names=datamodule.class_names)
        model.prepare_fit(datamodule)  # the training set's state a fit's setup gives it (e.g. LA-Net's target bank)
        model.train()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        images = count = 0
        elapsed = 0.0
        for step in range(batches + 3):
            batch = to_memory_format(taken[step % len(taken)], channels_last)
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                loss = model.training_loss(batch)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.on_train_batch_end(None, batch, step)  # a method's post-step work (LA-Net: momentum keys, queue)
            if step >= 3:
                elapsed += time.perf_counter() - start
                images += len(batch["label"])
                count += 1
                if elapsed > seconds:
                    break
        rates[name] = images / elapsed
        print(f"bare {name}: {rates[name]:.1f} img/s over {count} steps", flush=True)
    return rates


def fit_rate(configs: list[Path], data_root: str | None, channels_last: bool, bf16: bool, batches: int) -> float:
    """``train_img_per_s`` of a ``fer-zoo fit`` limited to ``batches`` training batches and no validation."""
    with tempfile.TemporaryDirectory() as run_dir:
        cmd = [sys.executable, "-m", "fer_zoo", "fit"]
        for path in configs:
            cmd += ["--config", str(path)]
        if data_root:
            cmd += ["--data.root", data_root]
        cmd += [
            "--model.init_args.channels_last", str(channels_last).lower(),
            "--trainer.precision", "bf16-mixed" if bf16 else "32-true",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", str(batches),
            "--trainer.limit_val_batches", "0", "--checkpoint_every_n_steps", "0",
            "--wandb", "disabled", "--run_dir", run_dir,
        ]  # fmt: skip
        env = {**os.environ, "WANDB_MODE": "disabled"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"benchmarks.speed: fit failed ({shlex.join(cmd)}):\n{done.stderr[-2000:]}")
        return float(json.loads((Path(run_dir) / "fit_report.json").read_text())["train_img_per_s"])


def row_lines(row: str, args: argparse.Namespace, wanted: set[str]) -> list[str]:
    """The table lines of one row: bare loop and fit alternated ``--repeats`` times, medians of each.

    Alternating (bare, fit, bare, fit, ...) spreads a drift of the machine's speed over both columns instead of
    charging it to whichever ran second.
    """
    config = experiment_config(args.dataset, row)
    bare_runs: list[dict[str, float]] = []
    fit_runs: list[dict[str, float]] = []
    for _ in range(args.repeats):
        bare_runs.append(bare_loop(config, args.data_root, args.batches, args.seconds, wanted))
        fits = {}
        for name, channels_last, bf16 in SETTINGS:
            if name in wanted:
                fits[name] = fit_rate(experiment_files(args.dataset, row), args.data_root, channels_last, bf16,
                                      args.batches)
                print(f"{row} fit {name}: {fits[name]:.1f} img/s", flush=True)
        fit_runs.append(fits)
    bare = {name: statistics.median(run[name] for run in bare_runs) for name in bare_runs[0]}
    best = max(bare.values())
    lines = []
    for name in fit_runs[0]:
        fit = statistics.median(run[name] for run in fit_runs)
        line = f"| {row} | {name} | {bare[name]:.1f} | {fit:.1f} | {fit / bare[name]:.2f} | {fit / best:.2f} |"
        if args.repeats > 1:
            line += (f" bare {', '.join(f'{run[name]:.1f}' for run in bare_runs)}; "
                     f"fit {', '.join(f'{run[name]:.1f}' for run in fit_runs)} |")
        lines.append(line)
    return lines


def row_parser(doc: str) -> argparse.ArgumentParser:
    """The options of every per-row benchmark (``--dataset``, ``--data-root``, ``--rows``, ``--out``); parsing
    with it also sets torch's threads from ``OMP_NUM_THREADS`` when that is set."""

    class RowParser(argparse.ArgumentParser):
        def parse_args(self, *args: Any, **kwargs: Any) -> argparse.Namespace:  # type: ignore[override]
            parsed = super().parse_args(*args, **kwargs)
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
            return parsed

    p = RowParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ferplus")
    p.add_argument("--data-root", default=None)
    p.add_argument("--rows", default="face-baseline", help="comma-separated experiment rows (index names)")
    p.add_argument("--out", default=None, help="Markdown file for the report (default: print only)")
    return p


def main(argv: list[str] | None = None) -> None:
    """Measure every row and write the Markdown table."""
    p = row_parser(__doc__)
    p.add_argument("--batches", type=int, default=20, help="timed training batches per measurement")
    p.add_argument("--seconds", type=float, default=30.0, help="stop a bare loop after this much timed compute")
    p.add_argument("--repeats", type=int, default=1,
                   help="alternate bare loop and fit this many times; the table gives the medians and every value")
    p.add_argument("--settings", default=",".join(s[0] for s in SETTINGS), help="subset of the settings")
    args = p.parse_args(argv)
    wanted = set(args.settings.split(","))
    lines = [
        f"# Training speed, {args.dataset}",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, nothing else training. Batches of the row's own "
        f"data module; bare loop: {args.batches} timed steps (at most {args.seconds:.0f} s) after 3 warm-up steps; "
        f"fit: {args.batches} batches, the first 3 untimed"
        + (f"; bare and fit alternated {args.repeats} times, medians (every value in the last column)."
           if args.repeats > 1 else "."),
        "",
        "| row | setting | bare loop img/s | fit img/s | fit / bare (same setting) | fit / best bare |"
        + (" every run |" if args.repeats > 1 else ""),
        "|---|---|---|---|---|---|" + ("---|" if args.repeats > 1 else ""),
    ]
    for row in args.rows.split(","):
        try:
            lines += row_lines(row, args, wanted)
        except (SystemExit, Exception) as error:  # one row that cannot run (e.g. a missing cache) keeps the others
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"{row}: not measured: {message}", flush=True)
            lines.append(f"| {row} | – | not measured: {message} | | | |")
    finish_report(lines, "benchmarks.speed", list(sys.argv[1:] if argv is None else argv), args.out)


if __name__ == "__main__":
    main()
