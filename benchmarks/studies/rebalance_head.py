"""Head re-balancing study: :mod:`fer_zoo.rebalance`'s three options on one checkpoint, as a Markdown table.

Logit adjustment of the fitted head, tau-normalisation and cRT (a balanced-softmax linear head on the frozen
features), each chosen on validation by one rule (the highest validation MCA whose validation OA is within
``--max-oa-drop`` points of the fitted head's); test is read at the choice only, and the cRT curve shows the trade.
The method is documented in :mod:`fer_zoo.rebalance`; ``fer-zoo rebalance`` is the user's command for the same
head. ``--out-ckpt`` writes the cRT checkpoint, which ``fer-zoo test --ckpt_path <it>
--model.init_args.logit_adjust_tau <tau>`` reproduces. Usage::

    python -m benchmarks.studies.rebalance_head runs/.../s1/fit/checkpoints/best-*.ckpt --data-root ../shared/data/ferplus \\
        --out benchmarks/results/<study>/rebalance_head.md --out-ckpt runs/.../crt.ckpt
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchmarks.publish import finish_report
from fer_zoo.rebalance import L2_GRID, checkpoint_features, parse_l2, rebalance, write_checkpoint


def main(argv: list[str] | None = None) -> str:
    """Extract the features once, score every option, write the Markdown report (and the cRT checkpoint)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a fer-zoo fit checkpoint of a classifier with a linear head")
    p.add_argument("--data-root", default=None)
    p.add_argument("--max-oa-drop", type=float, default=1.5, help="points of validation OA an option may cost")
    p.add_argument("--l2", default=",".join(f"{v:g}" for v in L2_GRID), help="comma-separated L2 grid of cRT")
    p.add_argument("--out", default=None, help="Markdown report")
    p.add_argument("--out-ckpt", default=None, help="write the checkpoint with the chosen cRT head here")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    l2_grid = parse_l2(args.l2)
    try:
        loaded = checkpoint_features(args.checkpoint, args.data_root)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    result = rebalance(loaded["feats"], loaded["weight"], loaded["bias"], loaded["log_prior"], args.max_oa_drop,
                       l2_grid)
    crt = result["crt"]
    if args.out_ckpt:
        write_checkpoint(args.checkpoint, args.out_ckpt, loaded["prefix"], crt["head"], crt["tau"])
        print(f"cRT checkpoint: {args.out_ckpt}; reproduce the row with: fer-zoo test --ckpt_path {args.out_ckpt} "
              f"--model.init_args.logit_adjust_tau {crt['tau']} --data.root <root>")
    lines = report(result, loaded["task"].class_names, args)
    return finish_report(lines, "benchmarks.studies.rebalance_head", argv, args.out)


def report(result: dict[str, Any], classes: list[str], args: argparse.Namespace) -> list[str]:
    """The Markdown table of the options and the cRT curve."""
    pct = lambda v: f"{100 * v:.2f}"
    names = {"plain": "fitted head", "logit_adjust": "fitted head + logit adjustment",
             "tau_norm": "tau-normalised head", "crt": "cRT head (balanced softmax on frozen features)"}
    lines = [
        f"# Head re-balancing of `{args.checkpoint}`",
        "",
        f"Each option chosen on validation: highest validation MCA with validation OA within {args.max_oa_drop} points "
        f"of the fitted head's ({pct(result['reference_val_oa'])}); test read at the choice only. Single view.",
        "",
        "| option | choice | val OA | val MCA | test OA | test MCA | test macro-F1 | " + " | ".join(classes) + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(classes),
    ]
    for key, name in names.items():
        r = result[key]
        v, t = r["val"], r["test"]
        lines.append(f"| {name} | {r['choice']} | {pct(v['acc'])} | {pct(v['mca'])} | {pct(t['acc'])} | "
                     f"{pct(t['mca'])} | {pct(t['f1_macro'])} | " + " | ".join(pct(a) for a in t["per_class_acc"])
                     + " |")
    crt = result["crt"]
    lines += ["", f"## cRT curve at L2 {crt['l2']:g} (validation chooses; test shown for the trade only)", "",
              "| tau | val OA | val MCA | test OA | test MCA | test macro-F1 | contempt | disgust |", "|---|---|---|---|---|---|---|---|"]
    idx = {c: classes.index(c) for c in ("contempt", "disgust") if c in classes}
    for tau, v, t in crt["curve"][::2]:
        rare = [pct(t["per_class_acc"][idx[c]]) if c in idx else "-" for c in ("contempt", "disgust")]
        lines.append(f"| {tau} | {pct(v['acc'])} | {pct(v['mca'])} | {pct(t['acc'])} | {pct(t['mca'])} | "
                     f"{pct(t['f1_macro'])} | {rare[0]} | {rare[1]} |")
    return lines


if __name__ == "__main__":
    main()
