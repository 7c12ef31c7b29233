"""Decoupled classifier re-balancing (Kang et al., ICLR 2020) beside post-hoc logit adjustment, on one checkpoint.

The network's features stay as fitted; only the linear head changes. On the centre-view features of the training,
validation and test splits (eval mode, no augmentation; one forward pass each), three options are scored:

* **logit adjustment** of the fitted head (Menon et al., 2021): ``z - tau * log(prior)``, as
  :mod:`benchmarks.studies.logit_adjust`;
* **tau-normalisation** (Kang et al.): each class's weight row divided by its norm to the power ``p``
  (``p`` in 0..2; the bias is kept, as the fitted head has one). It removes the norm a frequent class gains in
  training, with no data;
* **cRT** (classifier re-training, Kang et al.): a new multinomial logistic-regression head on the frozen training
  features (standardised; the probe's L-BFGS fit, :func:`benchmarks.probe.fit_logistic`) with the balanced-softmax
  loss (``log(prior)`` added to the logits in the loss, the training prior of the checkpoint): its plain logits
  target balanced error; the post-hoc grid of ``tau`` (negative: the prior added back) then trades MCA for OA.
  Kang et al. re-sample class-balanced batches; the balanced-softmax loss is the re-weighting with the same optimum
  (full batch, no sampling noise).

Every option is chosen on **validation** by one rule: the highest validation MCA whose validation OA is within
``--max-oa-drop`` points of the fitted head's own validation OA (``choose_tau``); test is read at the choice only.
``--out-ckpt`` writes the checkpoint with the chosen cRT head folded in (standardisation absorbed into the weights)
and the chosen ``tau`` recorded in its hyper-parameters; ``fer-zoo test --ckpt_path <it>
--model.init_args.logit_adjust_tau <tau>`` reproduces the cRT row (test-time options come from the command, never
from a checkpoint). Usage::

    python -m benchmarks.studies.rebalance_head runs/.../s1/fit/checkpoints/best-*.ckpt --data-root ../shared/data/ferplus \\
        --out benchmarks/results/<study>/rebalance_head.md --out-ckpt runs/.../crt.ckpt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.probe import L2_GRID, fit_logistic
from benchmarks.publish import finish_report
from benchmarks.studies.logit_adjust import GRID, choose_tau, datamodule_from_checkpoint, scores
from fer_zoo.checkpoints import load_task

SPLITS = ("train", "val", "test")
P_GRID = [round(0.1 * i, 2) for i in range(21)]


def linear_head(task: nn.Module) -> tuple[str, nn.Linear]:
    """The state-dict prefix and module of the task's final linear layer (the head re-balancing may change)."""
    head = getattr(task, "head", None)
    linears = [(name, m) for name, m in head.named_modules() if isinstance(m, nn.Linear)] if head is not None else []
    if not linears:
        raise SystemExit(f"{type(task).__name__}: no linear `head` to re-balance (only plain classifiers have one)")
    name, module = linears[-1]
    return f"head.{name}", module


@torch.no_grad()
def head_inputs(task: nn.Module, loader: Any, num_classes: int) -> dict[str, Tensor]:
    """Inputs of the final linear layer (features), the task's logits, soft targets and labels of every batch."""
    _, linear = linear_head(task)
    task.to(memory_format=torch.channels_last)
    captured: list[Tensor] = []
    hook = linear.register_forward_pre_hook(lambda _m, args: captured.append(args[0].float()))
    logits, targets, labels = [], [], []
    try:
        for batch in loader:
            logits.append(task(batch["image"].contiguous(memory_format=torch.channels_last)).float())
            labels.append(batch["label"])
            target = batch.get("target")  # soft labels where the dataset has them, else one-hot
            targets.append((F.one_hot(batch["label"], num_classes) if target is None else target).float())
    finally:
        hook.remove()
    return {"x": torch.cat(captured), "z": torch.cat(logits), "t": torch.cat(targets), "y": torch.cat(labels)}


def tau_normalised(weight: Tensor, p: float) -> Tensor:
    """Each class row of ``weight`` divided by its L2 norm to the power ``p`` (``p = 0``: unchanged)."""
    return weight / weight.norm(dim=1, keepdim=True).pow(p)


def rebalance(feats: dict[str, dict[str, Tensor]], weight: Tensor, bias: Tensor, log_prior: Tensor,
              max_oa_drop: float, l2_grid: tuple[float, ...] = L2_GRID) -> dict[str, Any]:
    """Score the three options on validation and test; the choice of each on validation (module docstring)."""
    val, test = feats["val"], feats["test"]
    reference = scores(val["z"], val["y"], log_prior, 0.0)["acc"]
    out: dict[str, Any] = {"reference_val_oa": reference}

    curves = {t: (scores(val["z"], val["y"], log_prior, t), scores(test["z"], test["y"], log_prior, t)) for t in GRID}
    tau = choose_tau({t: v for t, (v, _) in curves.items()}, max_oa_drop, reference)
    out["plain"] = {"choice": "-", "val": curves[0.0][0], "test": curves[0.0][1]}
    out["logit_adjust"] = {"choice": f"tau {tau}", "val": curves[tau][0], "test": curves[tau][1]}

    def head_logits(split: dict[str, Tensor], w: Tensor, b: Tensor) -> Tensor:
        return split["x"] @ w.T + b

    norm_curves = {p: tuple(scores(head_logits(s, tau_normalised(weight, p), bias), s["y"], log_prior, 0.0)
                            for s in (val, test)) for p in P_GRID}
    p = choose_tau({q: v for q, (v, _) in norm_curves.items()}, max_oa_drop, reference)
    out["tau_norm"] = {"choice": f"p {p}", "val": norm_curves[p][0], "test": norm_curves[p][1]}

    train = feats["train"]
    mean, std = train["x"].mean(0), train["x"].std(0).clamp(min=1e-6)
    crt_val, crt_test, heads, start = {}, {}, {}, None
    for l2 in sorted(l2_grid, reverse=True):  # strongest first: each fit warm-starts the next, weaker one
        w, b = start = fit_logistic((train["x"] - mean) / std, train["t"], l2, init=start, dtype=torch.float32,
                                    offset=log_prior)
        w_raw, b_raw = w / std, b - (w / std) @ mean  # the standardisation folded into the head
        heads[l2] = (w_raw, b_raw)
        for t in GRID:
            crt_val[(l2, t)] = scores(head_logits(val, w_raw, b_raw), val["y"], log_prior, t)
            crt_test[(l2, t)] = scores(head_logits(test, w_raw, b_raw), test["y"], log_prior, t)
    l2, t = choose_tau(crt_val, max_oa_drop, reference, size=lambda k: abs(k[1]))
    out["crt"] = {"choice": f"L2 {l2:g}, tau {t}", "val": crt_val[(l2, t)], "test": crt_test[(l2, t)],
                  "l2": l2, "tau": t, "head": heads[l2],
                  "curve": [(tt, crt_val[(l2, tt)], crt_test[(l2, tt)]) for tt in GRID]}
    return out


def write_checkpoint(source: str, target: str, prefix: str, head: tuple[Tensor, Tensor], tau: float) -> None:
    """``source`` with the head ``prefix`` replaced and ``logit_adjust_tau`` set; weights and hyper-parameters only."""
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    for key, value in zip(("weight", "bias"), head):
        state[f"{prefix}.{key}"] = value.to(state[f"{prefix}.{key}"].dtype).contiguous()
    ckpt["hyper_parameters"] = {**ckpt["hyper_parameters"], "logit_adjust_tau": float(tau)}
    kept = ("state_dict", "hyper_parameters", "datamodule_hyper_parameters", "pytorch-lightning_version", "epoch",
            "global_step")  # no optimiser or loop state: a test/predict checkpoint, not one to resume a fit from
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: ckpt[k] for k in kept if k in ckpt}, target)


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
    try:
        l2_grid = tuple(float(v) for v in args.l2.split(","))
    except ValueError:
        raise SystemExit(f"--l2 {args.l2!r}: expected comma-separated numbers") from None
    task, meta = load_task(args.checkpoint)
    prefix, linear = linear_head(task)
    dm = datamodule_from_checkpoint(meta, args.data_root, augment="none", hflip=0.0)
    dm.setup("fit")
    dm.setup("test")
    feats = {s: head_inputs(task, dm.eval_dataloader(s), dm.num_classes) for s in SPLITS}
    weight, bias = linear.weight.detach().float(), linear.bias.detach().float()
    check = feats["val"]["x"] @ weight.T + bias
    if not torch.allclose(check, feats["val"]["z"], atol=1e-3, rtol=1e-3):
        raise SystemExit(f"{args.checkpoint}: the task's logits are not its linear head of the captured features")
    result = rebalance(feats, weight, bias, task.class_prior.float().log(), args.max_oa_drop, l2_grid)
    crt = result["crt"]
    if args.out_ckpt:
        write_checkpoint(args.checkpoint, args.out_ckpt, prefix, crt["head"], crt["tau"])
        print(f"cRT checkpoint: {args.out_ckpt}; reproduce the row with: fer-zoo test --ckpt_path {args.out_ckpt} "
              f"--model.init_args.logit_adjust_tau {crt['tau']} --data.root <root>")
    return finish_report(report(result, task.class_names, args), "benchmarks.studies.rebalance_head", argv, args.out)


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
