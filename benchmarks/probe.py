"""Frozen-feature linear probe of each start on FERPlus: one fixed, cheap recipe that ranks the starts.

Recipe (the CLIP paper's linear-probe protocol, on FER data):

* **features**: each row's backbone with its start's weights (the row's configs from ``experiments/<dataset>/
  index.yaml``: start, input size, normalisation), in eval mode (the start's BatchNorm statistics), no
  augmentation, the centre view of every image of the training, validation and test splits; cached per row;
* **head**: multinomial logistic regression on the features standardised with the training split's mean and
  deviation, fitted full-batch by L-BFGS (float32, each L2 strength warm-started from the next stronger one) to the
  training split's targets (FERPlus: the vote distribution, the protocol's ``label_mode``), for each L2 strength
  of a fixed grid;
* **selection** of the L2 strength on validation OA; **one test** of the selected head.

It needs one forward pass per image (minutes per start on 2 cores) where a trained probe (``face-linear-probe``:
frozen backbone, augmentation, 10 epochs) needs ten. Usage::

    python -m benchmarks.probe --data-root ../shared/data/ferplus \\
        --rows face-linear-probe,probe-facenet,probe-mobilenetv2,probe-efficientnet-lite0,probe-random \\
        --out benchmarks/results/ferplus_starts_probe/ferplus.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.paths import ROOT
from benchmarks.publish import finish_report
from benchmarks.recipes import experiment_config
from fer_zoo.metrics import confusion_scores, prediction_confusion
from fer_zoo.rebalance import L2_GRID, fit_logistic  # L2_GRID: the probe's only hyper-parameter
from fer_zoo.registry import instantiate

SPLITS = ("train", "val", "test")


@torch.no_grad()
def extract(row_config: dict[str, Any], data_root: str | None, batch_size: int = 128) -> dict[str, Any]:
    """Pooled features, targets and labels of every split for one row's start, and the forward img/s."""
    data_spec = row_config["data"]
    init = {**data_spec["init_args"], "augment": "none", "hflip": 0.0, "eval_batch_size": batch_size}
    if data_root:
        init["root"] = data_root
    datamodule = instantiate({**data_spec, "init_args": init})
    datamodule.setup("fit")
    datamodule.setup("test")
    model = instantiate(row_config["model"], num_classes=datamodule.num_classes, class_names=datamodule.class_names)
    backbone = model.backbone.eval().to(memory_format=torch.channels_last)
    out: dict[str, Any] = {"classes": datamodule.class_names, "image_size": datamodule.image_size}
    images, seconds = 0, 0.0
    for split in SPLITS:
        feats, targets, labels = [], [], []
        for batch in datamodule.eval_dataloader(split):
            start = time.perf_counter()
            feats.append(backbone(batch["image"].contiguous(memory_format=torch.channels_last)).float())
            seconds += time.perf_counter() - start
            images += len(batch["label"])
            labels.append(batch["label"])
            target = batch.get("target")  # soft labels where the dataset has them, else one-hot
            targets.append(F.one_hot(batch["label"], datamodule.num_classes) if target is None else target)
        out[split] = {"x": torch.cat(feats), "y": torch.cat(labels), "t": torch.cat(targets).float()}
    out["forward_img_per_s"] = images / seconds
    return out


def scores(logits: Tensor, labels: Tensor) -> dict[str, Any]:
    """OA, MCA, macro-F1, per-class accuracy and the confusion matrix of ``logits`` against ``labels``."""
    confusion = prediction_confusion(logits, labels)
    return {**confusion_scores(confusion, list(range(len(confusion)))), "confusion": confusion.tolist()}


def probe(features: dict[str, Any], grid: tuple[float, ...] = L2_GRID) -> dict[str, Any]:
    """Fit a head per L2 strength, select on validation OA, test the selected one once."""
    train = features["train"]
    mean, std = train["x"].mean(0), train["x"].std(0).clamp(min=1e-6)
    norm = {s: (features[s]["x"].float() - mean) / std for s in SPLITS}
    fits, start = {}, None
    for l2 in sorted(grid, reverse=True):  # strongest first: each fit warm-starts the next, weaker one
        weight, bias = start = fit_logistic(norm["train"], train["t"], l2, init=start, dtype=torch.float32)
        fits[l2] = {"l2": l2, "val_acc": scores(norm["val"] @ weight.T + bias, features["val"]["y"])["acc"],
                    "weight": weight, "bias": bias}
    sweep = [fits[l2] for l2 in grid]
    best = max(sweep, key=lambda s: s["val_acc"])  # ties: the first in the grid
    test = scores(norm["test"] @ best["weight"].T + best["bias"], features["test"]["y"])
    return {
        "l2": best["l2"],
        "val_acc": best["val_acc"],
        "sweep": [{"l2": s["l2"], "val_acc": s["val_acc"]} for s in sweep],
        "test": test,
    }


def row_start(config: dict[str, Any]) -> str:
    """``backbone (weights)`` of a row's config."""
    init = config["model"]["init_args"]
    return f"{init['backbone']} ({init.get('weights') or 'random init'})"


def main(argv: list[str] | None = None) -> str:
    """Probe every row, write the Markdown table (and a JSON of each row's figures beside it)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ferplus")
    p.add_argument("--data-root", default=None)
    p.add_argument("--rows", required=True, help="comma-separated experiment rows (their start is probed)")
    p.add_argument("--cache", default=str(ROOT / "runs" / "probe"), help="feature cache folder")
    p.add_argument("--out", default=None, help="Markdown report (its JSON goes beside it)")
    args = p.parse_args(argv)
    cache = Path(args.cache) / args.dataset
    cache.mkdir(parents=True, exist_ok=True)
    results = []
    for row in args.rows.split(","):
        config = experiment_config(args.dataset, row)
        if not config:
            raise SystemExit(f"probe: no experiment row {row!r} in experiments/{args.dataset}/index.yaml")
        path = cache / f"{row}.pt"
        if path.is_file():
            features = torch.load(path)
        else:
            features = extract(config, args.data_root)
            torch.save(features, path)
        fitted = probe(features)
        results.append({"row": row, "start": row_start(config), "image_size": features["image_size"],
                        "dim": features["train"]["x"].shape[1], "forward_img_per_s": features["forward_img_per_s"],
                        "classes": features["classes"], **fitted})
        print(f"{row}: val {fitted['val_acc']:.4f} test {fitted['test']['acc']:.4f} (l2 {fitted['l2']:g})", flush=True)
    lines = [
        f"# Frozen-feature linear probe of each start: {args.dataset}",
        "",
        "Recipe: centre-view features of the start in eval mode (no augmentation), standardised on the training split;"
        " multinomial logistic regression (L-BFGS, full batch) on the training targets; L2 strength chosen on "
        f"validation OA from {list(L2_GRID)}; one test. OA = overall accuracy, MCA = mean class accuracy, F1 = "
        "macro-F1 (test, %). Forward img/s: feature extraction at batch 128, eval mode, fp32 channels-last, "
        f"{torch.get_num_threads()} threads.",
        "",
        "| row | start | input px | feature dim | val OA | OA | MCA | macro-F1 | L2 | forward img/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r["test"]
        lines.append(f"| {r['row']} | {r['start']} | {r['image_size']} | {r['dim']} | {100 * r['val_acc']:.2f} | "
                     f"{100 * t['acc']:.2f} | {100 * t['mca']:.2f} | {100 * t['f1_macro']:.2f} | {r['l2']:g} | "
                     f"{r['forward_img_per_s']:.0f} |")
    classes = results[0]["classes"] if results else []
    lines += ["", "Per-class test accuracy (%):", "", "| row | " + " | ".join(classes) + " |",
              "|---|" + "---|" * len(classes)]
    lines += [f"| {r['row']} | " + " | ".join(f"{100 * a:.1f}" for a in r["test"]["per_class_acc"]) + " |"
              for r in results]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1))
    return finish_report(lines, "benchmarks.probe", list(sys.argv[1:] if argv is None else argv), args.out)


if __name__ == "__main__":
    main()
