"""W&B side of a benchmark: one run of job type ``benchmark`` with the results, and a saved report.

Every ``fer-zoo fit``/``test`` run already carries ``group=<dataset>-<model>`` (so the seeds of a
model are one group), ``job_type=fit|test`` and tags ``[dataset, model, subcommand]``, so the W&B
runs page groups seeds and compares models with one "Group by: group" click.
:func:`log_benchmark` adds one run per table (``job_type=benchmark``, ``group=<dataset>``): the
per-run and per-model tables, a bar chart of test OA per model, and the HTML report.
:func:`build_report` builds a ``wandb-workspaces`` report with those panels (test OA by model,
validation curves of the fit runs grouped by model, the runs table); it is saved only when W&B
is online (``WANDB_MODE=online`` with a login), and built and checked offline by the tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def wandb_mode() -> str:
    """``WANDB_MODE`` (offline unless set; ``disabled`` skips W&B entirely)."""
    return os.environ.get("WANDB_MODE", "offline")


def log_benchmark(dataset: str, frame: pd.DataFrame, summary: pd.DataFrame, save_dir: Path,
                  project: str = "fer-zoo") -> str | None:
    """Log one ``benchmark`` run with the tables and a bar chart; returns its folder.

    Args:
        dataset: the table's dataset.
        frame: one row per (model, seed) run.
        summary: one row per model (means and stds).
        save_dir: where the (offline) W&B files go.
        project: W&B project.
    """
    mode = wandb_mode()
    if mode == "disabled":
        return None
    import wandb

    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, job_type="benchmark", group=dataset, name=f"benchmark-{dataset}",
                     tags=[dataset, "benchmark"], mode=mode, dir=str(save_dir), config={"dataset": dataset},
                     reinit="finish_previous")
    runs_table = wandb.Table(dataframe=frame.astype({c: str for c in frame.columns if frame[c].dtype == object}))
    models_table = wandb.Table(dataframe=summary)
    run.log({
        "benchmark/runs": runs_table,
        "benchmark/models": models_table,
        "benchmark/test_oa": wandb.plot.bar(models_table, "model", "acc_mean", title=f"{dataset}: test OA by model"),
    })
    for row in summary.itertuples():
        run.summary[f"test_oa/{row.model}"] = row.acc_mean
    folder = run.dir
    run.finish()
    return folder


def build_report(dataset: str, project: str = "fer-zoo", entity: str | None = None):
    """A ``wandb-workspaces`` report comparing the models of one benchmark (not saved here)."""
    import wandb_workspaces.reports.v2 as wr

    entity = entity or os.environ.get("WANDB_ENTITY") or "fer-zoo"
    fits = wr.Runset(entity=entity, project=project, name=f"{dataset} fits",
                     filters=f"JobType = 'fit' and Config('dataset') = '{dataset}'", groupby=["group"])
    tests = wr.Runset(entity=entity, project=project, name=f"{dataset} tests",
                      filters=f"JobType = 'test' and Config('dataset') = '{dataset}'", groupby=["group"])
    bench = wr.Runset(entity=entity, project=project, name=f"{dataset} benchmark",
                      filters=f"JobType = 'benchmark' and Config('dataset') = '{dataset}'")
    return wr.Report(
        project=project,
        entity=entity,
        title=f"fer-zoo benchmark: {dataset}",
        description="Validation-selected test accuracy per model (seeds grouped), validation curves, and the table.",
        blocks=[
            wr.H1(f"{dataset}: test accuracy by model"),
            wr.PanelGrid(runsets=[tests], panels=[
                wr.BarPlot(title="test OA (mean over seeds)", metrics=["test/acc"], groupby="group"),
                wr.BarPlot(title="test MCA", metrics=["test/mca"], groupby="group"),
                wr.BarPlot(title="test macro-F1", metrics=["test/f1_macro"], groupby="group"),
            ]),
            wr.H1("Validation curves (fit runs, grouped by model)"),
            wr.PanelGrid(runsets=[fits], panels=[
                wr.LinePlot(title="val OA", x="epoch", y=["val/acc"]),
                wr.LinePlot(title="train loss", x="Step", y=["train/loss"]),
            ]),
            wr.H1("Benchmark run: tables and HTML report"),
            wr.PanelGrid(runsets=[bench], panels=[wr.WeavePanelSummaryTable(table_name="benchmark/models"),
                wr.MediaBrowser(media_keys=["benchmark/report"])]),
        ],
    )


def save_report_if_online(dataset: str, project: str = "fer-zoo") -> str | None:
    """Save the report when W&B is online (returns its URL), else None."""
    if wandb_mode() != "online":
        return None
    report = build_report(dataset, project)
    report.save()
    return report.url
