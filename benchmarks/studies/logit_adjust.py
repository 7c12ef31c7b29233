"""Post-hoc logit adjustment (Menon et al., 2021): choose tau on validation, report test, show the MCA/OA trade.

For each checkpoint the validation and test logits are computed once (single view, as selection sees them); then,
for every ``tau`` of the grid, the logits ``z - tau * log(prior)`` (``prior``: the training split's class
frequencies stored in the checkpoint) are scored. ``tau`` is chosen on **validation**: the largest validation MCA
whose validation OA stays within ``--max-oa-drop`` points of ``tau = 0``. Test is read at that ``tau`` only; the
full curve is printed too, so the trade is visible. A negative ``tau`` adds the prior back: the correction a model
trained with the balanced-softmax loss (``logit_adjust_train_tau``) needs to trade MCA back for OA. ``--oa-reference``
names the row whose ``tau = 0`` validation OA sets the floor for every row (the plain baseline, so a balanced row is
held to the baseline's OA, not to its own). ``fer-zoo test --model.init_args.logit_adjust_tau T`` then
reproduces a row. Usage::

    python -m benchmarks.studies.logit_adjust runs/.../s0/fit/checkpoints/best-*.ckpt ... --data-root ../shared/data/ferplus \\
        --out benchmarks/results/<study>/logit_adjust.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from benchmarks.publish import finish_report
from benchmarks.tables import mean_std
from fer_zoo.checkpoints import load_task
from fer_zoo.rebalance import TAU_GRID as GRID
from fer_zoo.rebalance import adjusted_scores as scores
from fer_zoo.rebalance import choose_tau, datamodule_from_checkpoint


@torch.no_grad()
def logits_of(task: torch.nn.Module, loader: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Single-view logits and labels of every batch of ``loader``."""
    task.to(memory_format=torch.channels_last)
    outs, labels = [], []
    for batch in loader:
        images = batch["image"].contiguous(memory_format=torch.channels_last)
        outs.append(task(images).float())
        labels.append(batch["label"])
    return torch.cat(outs), torch.cat(labels)


def main(argv: list[str] | None = None) -> None:
    """Sweep tau for each checkpoint and write the Markdown table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+", help="fer-zoo fit checkpoints (e.g. each seed's best)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--max-oa-drop", type=float, default=1.5, help="points of validation OA tau may cost")
    p.add_argument("--labels", nargs="*", default=None, help="a row label per checkpoint (default: its run folder)")
    p.add_argument("--oa-reference", default=None,
                   help="label of the row whose tau = 0 validation OA is every row's reference (default: each its own)")
    p.add_argument("--out", default=None)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    labels = args.labels or [Path(ckpt).parents[2].name for ckpt in args.checkpoints]
    if len(labels) != len(args.checkpoints):
        raise SystemExit(f"--labels: {len(labels)} labels for {len(args.checkpoints)} checkpoints")
    if args.oa_reference is not None and args.oa_reference not in labels:
        raise SystemExit(f"--oa-reference {args.oa_reference!r} is not one of the row labels {labels}")
    rows = []
    for ckpt, label in zip(args.checkpoints, labels):
        task, meta = load_task(ckpt)
        dm = datamodule_from_checkpoint(meta, args.data_root)
        dm.setup("fit")
        dm.setup("test")
        log_prior = task.class_prior.float().log()
        val_logits, val_labels = logits_of(task, dm.val_dataloader())
        test_logits, test_labels = logits_of(task, dm.test_dataloader())
        val = {t: scores(val_logits, val_labels, log_prior, t) for t in GRID}
        test = {t: scores(test_logits, test_labels, log_prior, t) for t in GRID}
        train_tau = float(task.hparams.get("logit_adjust_train_tau", 0.0))
        if train_tau and -train_tau not in test:  # the shift that undoes the training one, fixed a priori
            val[-train_tau] = scores(val_logits, val_labels, log_prior, -train_tau)
            test[-train_tau] = scores(test_logits, test_labels, log_prior, -train_tau)
        rows.append({"row": label, "val": val, "test": test, "classes": task.class_names, "train_tau": train_tau})
    reference = next((r["val"][0.0]["acc"] for r in rows if r["row"] == args.oa_reference), None)
    for r in rows:
        r["tau"] = tau = choose_tau(r["val"], args.max_oa_drop, reference)
        val, test = r["val"], r["test"]
        print(f"{r['row']}: tau {tau} (val MCA {val[tau]['mca']:.4f}); test OA {test[0.0]['acc']:.4f} -> "
              f"{test[tau]['acc']:.4f}, MCA {test[0.0]['mca']:.4f} -> {test[tau]['mca']:.4f}", flush=True)
    finish_report(table(rows, args), "benchmarks.studies.logit_adjust", argv, args.out)


def table(rows: list[dict], args: argparse.Namespace) -> list[str]:
    """The Markdown report: chosen tau per checkpoint, mean ± std, and the validation/test curve."""
    pct = lambda v: f"{100 * v:.2f}"
    lines = [
        "# Post-hoc logit adjustment (tau chosen on validation)",
        "",
        f"tau: the largest validation MCA with validation OA within {args.max_oa_drop} points of "
        + (f"`{args.oa_reference}` at tau = 0" if args.oa_reference else "the same checkpoint at tau = 0")
        + f" (grid {GRID[0]}..{GRID[-1]} step 0.1; tau < 0 adds the prior back). Test read at that tau only. "
        "Single view.",
        "",
        "| checkpoint | tau | test OA (tau 0 -> tau) | test MCA | test macro-F1 | "
        + " | ".join(f"{c} acc" for c in rows[0]["classes"]) + " |",
        "|---|---|---|---|---|" + "---|" * len(rows[0]["classes"]),
    ]
    for r in rows:
        # a row trained on shifted logits also shows the a-priori undo (tau = -train tau), marked, beside the chosen tau
        chosen = [(r["row"], r["tau"])]
        if r.get("train_tau") and r["tau"] != -r["train_tau"]:
            chosen.append((f"{r['row']} (training shift undone, fixed)", -r["train_tau"]))
        for name, tau in chosen:
            t0, tt = r["test"][0.0], r["test"][tau]
            per_class = " | ".join(f"{pct(a)} -> {pct(b)}" for a, b in zip(t0["per_class_acc"], tt["per_class_acc"]))
            lines.append(
                f"| {name} | {tau} | {pct(t0['acc'])} -> {pct(tt['acc'])} | {pct(t0['mca'])} -> "
                f"{pct(tt['mca'])} | {pct(t0['f1_macro'])} -> {pct(tt['f1_macro'])} | {per_class} |"
            )
    import pandas as pd

    groups: dict[str, list[dict]] = {}
    for r in rows:  # seeds of one row (labels `<row>-s<seed>`) are averaged; different rows are not
        groups.setdefault(re.sub(r"-s\d+$", "", r["row"]), []).append(r)
    for group, members in groups.items():
        if len(members) < 2:
            continue
        for key, name in (("acc", "OA"), ("mca", "MCA"), ("f1_macro", "macro-F1")):
            before = pd.Series([r["test"][0.0][key] for r in members])
            after = pd.Series([r["test"][r["tau"]][key] for r in members])
            lines.append(f"\n{group}, mean over {len(members)} seeds, test {name}: {mean_std(before)} -> {mean_std(after)}")
    lines += ["", "## Curve (every tau; validation chooses, test is shown for the trade only)", "",
              "| checkpoint | tau | val OA | val MCA | test OA | test MCA | test macro-F1 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        for t in sorted({*GRID[::2], r["tau"]}):
            v, s = r["val"][t], r["test"][t]
            lines.append(f"| {r['row']} | {t} | {pct(v['acc'])} | {pct(v['mca'])} | {pct(s['acc'])} | {pct(s['mca'])} | "
                         f"{pct(s['f1_macro'])} |")
    return lines


if __name__ == "__main__":
    main()
