"""``make report``: every published table re-tabulated from its committed run reports, plus a self-contained
HTML page per table (every plot inline, opens from disk with no server).

For each ``benchmarks/results/<study>/<dataset>.md`` made by ``benchmarks.run``, the table's own Command line is run
again with ``--from-results`` (no training): the Markdown and CSV must come back unchanged (``git diff`` shows any
drift), and ``runs/report/<study>/<dataset>.html`` is written from the same rows: OA/MCA/macro-F1 bars with the seed
spread (paper numbers as markers, peers as hatched bars), per-class accuracy heatmap, row-normalised confusion
matrices (summed over seeds) and every run's validation curve. HTML and plots are not committed.

``python -m benchmarks.report --check FILE.html --screenshot OUT.png`` opens a report in headless Chromium and saves
what it renders.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.paths import RESULTS, ROOT


def _png(fig) -> str:
    """A matplotlib figure as an inline ``<img>``."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _bars(frame: pd.DataFrame, peers: list[dict], papers: dict[str, float]) -> str:
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(frame["model"]))
    names = models + [f"peer: {p['name']}" for p in peers]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 2), 3.8))
    width = 0.27
    for k, metric in enumerate(("acc", "mca", "f1_macro")):
        means = [100 * frame[frame.model == m][metric].mean() for m in models] + [100 * p[metric] for p in peers]
        stds = [100 * frame[frame.model == m][metric].std(ddof=0) for m in models] + [0.0] * len(peers)
        x = np.arange(len(names)) + (k - 1) * width
        bars = ax.bar(x, means, width, yerr=stds, capsize=3, label={"acc": "OA", "mca": "MCA", "f1_macro": "macro-F1"}[metric])
        for bar in bars[len(models):]:
            bar.set_hatch("//")
    for i, m in enumerate(models):
        if papers.get(m) is not None:
            ax.plot(i - width, papers[m], marker="*", color="black", markersize=11, linestyle="none",
                    label="paper OA" if i == next(j for j, n in enumerate(models) if papers.get(n) is not None) else None)
    ax.set_xticks(np.arange(len(names)), names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("% (mean ± std over seeds)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=4, loc="upper right")
    ax.set_title("Test accuracy (validation-selected checkpoints); hatched: peers; ★: the paper's number")
    return _png(fig)


def _heatmap(frame: pd.DataFrame, rows: list[dict], peers: list[dict]) -> str:
    import matplotlib.pyplot as plt

    classes = list(rows[0]["per_class_acc"])
    labels, values = [], []
    for model in dict.fromkeys(frame["model"]):
        runs = [r for r in rows if r["model"] == model]
        labels.append(model)
        values.append([100 * np.mean([r["per_class_acc"][c] for r in runs]) for c in classes])
    for peer in peers:
        labels.append(f"peer: {peer['name']}")
        values.append([100 * peer["per_class_acc"].get(c, 0.0) for c in classes])
    data = np.array(values)
    fig, ax = plt.subplots(figsize=(1.0 * len(classes) + 3, 0.45 * len(labels) + 1.5))
    image = ax.imshow(data, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=8)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    fig.colorbar(image, ax=ax, label="per-class test accuracy (%)")
    ax.set_title("Per-class accuracy (mean over seeds)")
    return _png(fig)


def _confusions(models: list[str], dataset_dir: Path) -> str:
    import matplotlib.pyplot as plt

    found = []
    for model in models:
        mats, names = [], None
        for report in sorted((dataset_dir / model).glob("s*/test_report.json")):
            data = json.loads(report.read_text())
            mats.append(np.array(data["confusion_matrix"], dtype=float))
            names = data["class_names"]
        if mats:
            found.append((model, sum(mats), names))
    if not found:
        return "<p>No per-run test reports found.</p>"
    cols = min(3, len(found))
    rows = int(np.ceil(len(found) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.flat[len(found):]:
        ax.axis("off")
    for ax, (model, cm, names) in zip(axes.flat, found):
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for (i, j), v in np.ndenumerate(norm):
            if v >= 0.05:
                ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=6, color="white" if v > 0.5 else "black")
        short = [n[:4] for n in names]
        ax.set_xticks(range(len(names)), short, fontsize=7, rotation=45)
        ax.set_yticks(range(len(names)), short, fontsize=7)
        ax.set(xlabel="predicted", ylabel="true", title=f"{model} (rows %, all seeds)")
    fig.tight_layout()
    return _png(fig)


def _curves(models: list[str], dataset_dir: Path) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    drawn = 0
    for k, model in enumerate(models):
        for metrics in sorted((dataset_dir / model).glob("s*/fit_metrics.csv")):
            frame = pd.read_csv(metrics)
            if "val/acc" not in frame:
                continue
            series = frame.dropna(subset=["val/acc"])
            ax.plot(series["epoch"], 100 * series["val/acc"], marker="o", markersize=3, color=f"C{k % 10}",
                    label=f"{model} {metrics.parent.name}", alpha=0.85)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return "<p>No validation curves found.</p>"
    ax.set(xlabel="epoch", ylabel="validation OA (%)", title="Validation accuracy per epoch, every run")
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def _markdown_table_to_html(markdown: str) -> str:
    """The first markdown table of ``markdown`` as an HTML table."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    out, header = [], True
    for line in lines:
        cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
        if set("".join(cells)) <= set("-: "):
            header = False
            continue
        if not header and cells and cells[0] == "model":
            break  # the next table (per-class) starts
        tag = "th" if header else "td"
        out.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
    return "<table>" + "".join(out) + "</table>"


def write_html(
    out: Path, title: str, markdown: str, rows: list[dict], peers: list[dict], papers: dict[str, float], dataset_dir: Path
) -> Path:
    """Write the report for one table.

    Args:
        out: the ``.html`` file.
        title: page title.
        markdown: the table's markdown (its first table and its notes are embedded).
        rows: one dict per run (model, seed, acc, mca, f1_macro, per_class_acc).
        peers: peer rows (name, acc, mca, f1_macro, per_class_acc).
        papers: model -> the paper's OA (models without one are absent).
        dataset_dir: ``<results>/<dataset>`` with the published per-run reports.
    """
    import matplotlib

    matplotlib.use("Agg")
    frame = pd.DataFrame([{k: v for k, v in r.items() if k != "per_class_acc"} for r in rows])
    models = list(dict.fromkeys(frame["model"]))
    notes = html.escape(markdown.split("\n\n", 3)[-1] if markdown else "")
    body = [
        f"<h1>{html.escape(title)}</h1>",
        _markdown_table_to_html(markdown),
        "<h2>Overall accuracy, mean class accuracy, macro-F1</h2>", _bars(frame, peers, papers),
        "<h2>Per-class accuracy</h2>", _heatmap(frame, rows, peers),
        "<h2>Confusion matrices</h2>", _confusions(models, dataset_dir),
        "<h2>Validation curves</h2>", _curves(models, dataset_dir),
        f"<h2>Table and notes (markdown)</h2><pre>{notes}</pre>",
    ]
    style = ("body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #bbb;padding:3px 6px}"
             "th{background:#eee}img{max-width:100%}pre{white-space:pre-wrap;font-size:12px;background:#f7f7f7}")
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                   f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
    return out


def screenshot(page: Path, png: Path, width: int = 1300, height: int = 4200) -> Path:
    """Render ``page`` in headless Chromium and save a PNG.

    Raises:
        FileNotFoundError: when no Chromium is installed (``apt-get install chromium``).
    """
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},{height}",
         f"--screenshot={png.resolve()}", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    return png


COMMAND = re.compile(r"^Command: `python -m benchmarks\.run (.*?)`")


def table_command(table: Path) -> list[str] | None:
    """The runner arguments a published table was made with (its ``Command:`` line), pointed at the table's own study
    folder; None for a report another script wrote."""
    for line in table.read_text().splitlines()[:5]:
        match = COMMAND.match(line)
        if match:
            argv = shlex.split(match.group(1))
            if "--note" in argv:  # older tables pasted a note file; notes now live in the study's NOTES.md
                del argv[argv.index("--note") : argv.index("--note") + 2]
            if "--results" not in argv:
                argv += ["--results", str(table.parent.relative_to(ROOT))]
            return [a for a in argv if a != "--from-results"]
    return None


def report_study(table: Path, argv: list[str], out: Path) -> Path:
    """Re-tabulate one published table from its reports (``argv``: its :func:`table_command`) and write its HTML page
    under ``out``."""
    from benchmarks import run
    from benchmarks.recipes import label_noise, paper_entry
    from benchmarks.tables import peer_rows

    tables = run.main([*argv, "--from-results"])
    args = run.parser().parse_args(argv)
    dataset = table.stem
    rows = tables[dataset]
    papers = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        entry = paper_entry(dataset, model, label_noise(dataset, model, args.override))
        if entry is not None and entry["acc"] is not None:
            papers[model] = entry["acc"]
    out.mkdir(parents=True, exist_ok=True)
    return write_html(out / f"{dataset}.html", f"fer-zoo benchmark: {table.parent.name} ({dataset})",
                      table.read_text(), rows, peer_rows(dataset), papers, table.parent / "runs" / dataset)


def main(argv: list[str] | None = None) -> None:
    """Re-tabulate every published runner table and write its HTML page (``make report``); or, with ``--check``,
    render one page in headless Chromium."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--studies", nargs="*", default=None, help="study folders under benchmarks/results (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "report", help="where the HTML pages go")
    p.add_argument("--check", default=None, help="an HTML report to render (with --screenshot)")
    p.add_argument("--screenshot", default=None, help="PNG to write")
    p.add_argument("--height", type=int, default=4200)
    a = p.parse_args(argv)
    if a.check:
        print(screenshot(Path(a.check), Path(a.screenshot or Path(a.check).with_suffix(".png")), height=a.height))
        return
    studies = [RESULTS / s for s in a.studies] if a.studies else sorted(d for d in RESULTS.iterdir() if d.is_dir())
    for study in studies:
        for table in sorted(study.glob("*.md")):
            argv = table_command(table)
            if argv is not None:
                print(f"{table.relative_to(ROOT)} -> {report_study(table, argv, a.out / study.name)}", flush=True)


if __name__ == "__main__":
    main()
