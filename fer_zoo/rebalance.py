"""Re-balance a trained classifier toward the rare classes from its frozen features (``fer-zoo rebalance``).

A FER network tuned for overall accuracy (OA) on an imbalanced set (FERPlus: contempt 0.6 %, disgust 0.9 % of the
training faces) rarely predicts the rare classes. Its features often separate them anyway; what is biased is the
linear head. Three head-only options, after Kang et al. (ICLR 2020, "decoupling representation and classifier")
and Menon et al. (ICLR 2021, logit adjustment), from one forward pass over the train, validation and test splits
(centre view, eval mode, no augmentation):

* **logit adjustment** of the fitted head: ``z - tau * log(prior)``, ``prior`` the training split's class
  frequencies stored in the checkpoint (``tau < 0`` adds the prior back);
* **tau-normalisation**: each class's weight row divided by its norm to the power ``p`` (bias kept);
* **cRT** (classifier re-training): a new multinomial logistic-regression head on the standardised training
  features, fitted by full-batch L-BFGS with the **balanced-softmax** loss (``log(prior)`` added to the logits in
  the loss only), so its plain logits target balanced error; then the post-hoc ``tau`` trades MCA back for OA.
  Kang et al. re-sample class-balanced batches; the balanced-softmax loss has the same optimum without sampling
  noise.

Every choice is made on **validation** by one rule (:func:`choose_tau`): the highest validation mean class
accuracy (MCA) whose validation OA is within ``max_oa_drop`` points of the fitted head's; test is read at the
choice only. ``fer-zoo rebalance`` writes the checkpoint with the chosen cRT head folded in (standardisation
absorbed into the weights; weights and hyper-parameters only, not a checkpoint to resume a fit from) and a JSON
report beside it. Test-time options come from the command, never from a checkpoint, so the chosen ``tau`` is
passed as ``--model.init_args.logit_adjust_tau`` to ``fer-zoo test`` / ``fer-zoo predict`` (the command prints it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_zoo.metrics import confusion_scores, prediction_confusion

SPLITS = ("train", "val", "test")
#: post-hoc shifts scored (tau times the log prior subtracted)
TAU_GRID = [round(0.1 * i, 2) for i in range(-10, 21)]
#: tau-normalisation powers scored
P_GRID = [round(0.1 * i, 2) for i in range(21)]
#: L2 strengths of the logistic-regression heads (the frozen-feature probe uses the same grid)
L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def fit_logistic(
    x: Tensor,
    targets: Tensor,
    l2: float,
    max_iter: int = 300,
    init: tuple[Tensor, Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    offset: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression: minimise mean soft-target cross-entropy + ``l2``/2 · ||W||² (bias free).

    With ``offset`` the loss sees ``x W^T + b + offset``: ``offset = log(prior)`` is the balanced-softmax loss, whose
    fitted logits (without the offset) target balanced error instead of the training prior.

    Args:
        x: ``(N, D)`` features (standardised by the caller).
        targets: ``(N, C)`` target distributions (one-hot for hard labels).
        l2: L2 strength on the weights.
        max_iter: L-BFGS iterations (the problem is convex; it converges well before on these sizes).
        init: a starting ``(weight, bias)`` (a warm start from a neighbouring L2 strength); zeros by default.
        dtype: the precision of the fit.
        offset: a fixed ``(C,)`` logit shift used in the loss only (not part of the returned head).

    Returns:
        ``(weight (C, D), bias (C,))``.
    """
    x, targets = x.to(dtype), targets.to(dtype)
    if init is None:
        init = (torch.zeros(targets.shape[1], x.shape[1]), torch.zeros(targets.shape[1]))
    weight = init[0].to(dtype).clone().requires_grad_(True)
    bias = init[1].to(dtype).clone().requires_grad_(True)
    tolerance = 1e-9 if dtype == torch.float64 else 1e-6  # what the precision can resolve
    shift = torch.zeros(targets.shape[1], dtype=dtype) if offset is None else offset.to(dtype)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=tolerance,
        tolerance_change=tolerance * 1e-3,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = (
            -(targets * torch.log_softmax(x @ weight.T + bias + shift, 1)).sum(1).mean()
            + 0.5 * l2 * weight.pow(2).sum()
        )
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach(), bias.detach()


def adjusted_scores(logits: Tensor, labels: Tensor, log_prior: Tensor, tau: float) -> dict[str, Any]:
    """OA (``acc``), MCA, macro-F1 and per-class accuracy of ``logits - tau * log_prior``."""
    confusion = prediction_confusion(logits - tau * log_prior, labels)
    return confusion_scores(confusion, list(range(len(confusion))))


def choose_tau(
    val: dict[Any, dict[str, float]],
    max_oa_drop: float,
    reference_oa: float | None = None,
    size: Callable[[Any], float] = abs,
) -> Any:
    """The tau of the highest validation MCA whose validation OA is within ``max_oa_drop`` points of the reference.

    The reference is ``reference_oa`` (a fraction) when given, else this checkpoint's own OA at tau = 0. When no tau
    reaches the floor, the one of highest validation OA. Ties go to the smallest ``size(tau)`` (``|tau|``); any
    hashable candidate (e.g. an ``(l2, tau)`` pair with its own ``size``) may stand for tau.
    """
    floor = (val[0.0]["acc"] if reference_oa is None else reference_oa) - max_oa_drop / 100.0
    allowed = [t for t in val if val[t]["acc"] >= floor - 1e-12]
    if not allowed:
        return max(val, key=lambda t: (round(val[t]["acc"], 12), -size(t)))
    return max(allowed, key=lambda t: (round(val[t]["mca"], 12), -size(t)))


def datamodule_from_checkpoint(meta: dict, root: str | None, batch_size: int = 128, **overrides: object) -> object:
    """The checkpoint's own data module (class and options), with ``root`` when given and ``overrides`` applied."""
    from fer_zoo.registry import import_class

    hp = dict(meta.get("datamodule_hyper_parameters") or {})
    class_path = hp.pop("_class_path", None)
    hp.pop("_instantiator", None)
    if not class_path:
        raise ValueError("the checkpoint does not record its data module; pass a checkpoint written by fer-zoo fit")
    if root:
        hp["root"] = root
    hp.update(batch_size=batch_size, num_workers=1, **overrides)
    return import_class(class_path)(**hp)


def linear_head(task: nn.Module) -> tuple[str, nn.Linear]:
    """The state-dict prefix and module of the task's final linear layer (the head re-balancing may change).

    The classifier is the task's ``head_attribute`` (``head`` unless a method names another, e.g. LA-Net's ``fer_fc``).
    """
    attribute = getattr(task, "head_attribute", "head")
    head = getattr(task, attribute, None)
    linears = [(name, m) for name, m in head.named_modules() if isinstance(m, nn.Linear)] if head is not None else []
    if not linears:
        raise ValueError(f"{type(task).__name__} has no linear `{attribute}` to re-balance (plain classifiers have one)")
    name, module = linears[-1]
    return f"{attribute}.{name}" if name else attribute, module


@torch.no_grad()
def head_inputs(task: nn.Module, linear: nn.Linear, loader: Any, num_classes: int) -> dict[str, Tensor]:
    """Inputs of ``linear``, the task's final layer (features), its logits, soft targets and labels of every batch."""
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


def checkpoint_features(ckpt_path: str, data_root: str | None) -> dict[str, Any]:
    """Load a checkpoint and read its head's inputs on every split of its own data module (centre view).

    Returns:
        ``task``, ``prefix`` (state-dict name of the head), ``weight``/``bias`` of the fitted head, ``log_prior`` and
        ``feats`` (per split: features ``x``, logits ``z``, targets ``t``, labels ``y``).

    Raises:
        ValueError: naming the checkpoint when it has no linear head or its logits are not that head's output.
    """
    from fer_zoo.checkpoints import load_task

    task, meta = load_task(ckpt_path)
    prefix, linear = linear_head(task)
    dm = datamodule_from_checkpoint(meta, data_root, augment="none", hflip=0.0)
    dm.setup("fit")
    dm.setup("test")
    feats = {s: head_inputs(task, linear, dm.eval_dataloader(s), dm.num_classes) for s in SPLITS}
    weight, bias = linear.weight.detach().float(), linear.bias.detach().float()
    if not torch.allclose(feats["val"]["x"] @ weight.T + bias, feats["val"]["z"], atol=1e-3, rtol=1e-3):
        raise ValueError(f"{ckpt_path}: the task's logits are not its linear head of the captured features")
    return {
        "task": task,
        "prefix": prefix,
        "weight": weight,
        "bias": bias,
        "feats": feats,
        "log_prior": task.class_prior.float().log(),
    }


def tau_normalised(weight: Tensor, p: float) -> Tensor:
    """Each class row of ``weight`` divided by its L2 norm to the power ``p`` (``p = 0``: unchanged)."""
    return weight / weight.norm(dim=1, keepdim=True).pow(p)


def rebalance(
    feats: dict[str, dict[str, Tensor]],
    weight: Tensor,
    bias: Tensor,
    log_prior: Tensor,
    max_oa_drop: float,
    l2_grid: tuple[float, ...] = L2_GRID,
) -> dict[str, Any]:
    """Score the three options on validation and test; the choice of each on validation (module docstring)."""
    val, test = feats["val"], feats["test"]
    reference = adjusted_scores(val["z"], val["y"], log_prior, 0.0)["acc"]
    out: dict[str, Any] = {"reference_val_oa": reference}

    def both(val_logits: Tensor, test_logits: Tensor, tau: float) -> tuple[dict, dict]:
        return (
            adjusted_scores(val_logits, val["y"], log_prior, tau),
            adjusted_scores(test_logits, test["y"], log_prior, tau),
        )

    curves = {t: both(val["z"], test["z"], t) for t in TAU_GRID}
    tau = choose_tau({t: v for t, (v, _) in curves.items()}, max_oa_drop, reference)
    out["plain"] = {"choice": "-", "val": curves[0.0][0], "test": curves[0.0][1]}
    out["logit_adjust"] = {"choice": f"tau {tau}", "tau": tau, "val": curves[tau][0], "test": curves[tau][1]}

    norm_curves = {}
    for p in P_GRID:
        w = tau_normalised(weight, p)
        norm_curves[p] = both(val["x"] @ w.T + bias, test["x"] @ w.T + bias, 0.0)
    p = choose_tau({q: v for q, (v, _) in norm_curves.items()}, max_oa_drop, reference)
    out["tau_norm"] = {"choice": f"p {p}", "p": p, "val": norm_curves[p][0], "test": norm_curves[p][1]}

    train = feats["train"]
    mean, std = train["x"].mean(0), train["x"].std(0).clamp(min=1e-6)
    crt, heads, start = {}, {}, None
    for l2 in sorted(l2_grid, reverse=True):  # strongest first: each fit warm-starts the next, weaker one
        w, b = start = fit_logistic(
            (train["x"] - mean) / std, train["t"], l2, init=start, dtype=torch.float32, offset=log_prior
        )
        w_raw, b_raw = w / std, b - (w / std) @ mean  # the standardisation folded into the head
        heads[l2] = (w_raw, b_raw)
        for t in TAU_GRID:
            crt[(l2, t)] = both(val["x"] @ w_raw.T + b_raw, test["x"] @ w_raw.T + b_raw, t)
    l2, t = choose_tau({k: v for k, (v, _) in crt.items()}, max_oa_drop, reference, size=lambda k: abs(k[1]))
    out["crt"] = {
        "choice": f"L2 {l2:g}, tau {t}",
        "val": crt[(l2, t)][0],
        "test": crt[(l2, t)][1],
        "l2": l2,
        "tau": t,
        "head": heads[l2],
        "curve": [(tt, *crt[(l2, tt)]) for tt in TAU_GRID],
    }
    return out


def write_checkpoint(source: str, target: str, prefix: str, head: tuple[Tensor, Tensor], tau: float) -> None:
    """``source`` with the head ``prefix`` replaced and ``logit_adjust_tau`` set; weights and hyper-parameters only."""
    from fer_zoo.checkpoints import RUN_KEY

    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    state = ckpt["state_dict"]
    for key, value in zip(("weight", "bias"), head):
        state[f"{prefix}.{key}"] = value.to(state[f"{prefix}.{key}"].dtype).contiguous()
    ckpt["hyper_parameters"] = {**ckpt["hyper_parameters"], "logit_adjust_tau": float(tau)}
    kept = (
        "state_dict",
        "hyper_parameters",
        "datamodule_hyper_parameters",
        "pytorch-lightning_version",
        "epoch",
        "global_step",
        RUN_KEY,
    )  # no optimiser or loop state: a test/predict checkpoint, not one to resume a fit from
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: ckpt[k] for k in kept if k in ckpt}, target)


def parse_l2(text: str, option: str = "--l2") -> tuple[float, ...]:
    """A comma-separated L2 grid; a one-line error naming ``option`` otherwise."""
    try:
        grid = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SystemExit(f"{option} {text!r}: expected comma-separated numbers") from None
    if any(v < 0 for v in grid):
        raise SystemExit(f"{option} {text!r}: L2 strengths must be >= 0")
    return grid


def summary(result: dict[str, Any], classes: list[str]) -> dict[str, Any]:
    """The JSON-ready scores of every option (no tensors), per-class test accuracy named by class."""
    out: dict[str, Any] = {"reference_val_oa": result["reference_val_oa"], "classes": classes}
    for key in ("plain", "logit_adjust", "tau_norm", "crt"):
        r = result[key]
        out[key] = {
            "choice": r["choice"],
            **{k: r[k] for k in ("tau", "p", "l2") if k in r},
            **{split: {m: r[split][m] for m in ("acc", "mca", "f1_macro")} for split in ("val", "test")},
            "test_per_class_acc": dict(zip(classes, r["test"]["per_class_acc"])),
        }
    return out


def main(args: list[str]) -> None:
    """``fer-zoo rebalance`` entry point."""
    p = argparse.ArgumentParser(
        prog="fer-zoo rebalance", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ckpt_path", required=True, help="checkpoint of a classifier with a linear head (fer-zoo fit)")
    p.add_argument("--out", required=True, help="the re-balanced checkpoint to write (a JSON report goes beside it)")
    p.add_argument("--data.root", dest="root", default=None, help="dataset root (default: the one the fit used)")
    p.add_argument("--max_oa_drop", type=float, default=1.5, help="points of validation OA an option may cost")
    p.add_argument("--l2", default=",".join(f"{v:g}" for v in L2_GRID), help="comma-separated L2 grid of the cRT head")
    a = p.parse_args(args)
    if not Path(a.ckpt_path).is_file():
        raise SystemExit(f"fer-zoo rebalance: --ckpt_path {a.ckpt_path} does not exist")
    if a.max_oa_drop < 0:
        raise SystemExit(f"fer-zoo rebalance: --max_oa_drop {a.max_oa_drop}: must be >= 0 (points of OA)")
    l2_grid = parse_l2(a.l2)
    from fer_zoo.errors import input_error, input_error_message

    try:
        loaded = checkpoint_features(a.ckpt_path, a.root)
    except (ValueError, OSError) as error:
        raise SystemExit(f"fer-zoo rebalance: {error}") from None
    except Exception as error:  # the data module's own bad-input errors (missing root, corrupt image, ...)
        bad_input = input_error(error)
        if bad_input is None:
            raise
        raise SystemExit(input_error_message(bad_input, "rebalance")) from None
    result = rebalance(loaded["feats"], loaded["weight"], loaded["bias"], loaded["log_prior"], a.max_oa_drop, l2_grid)
    crt = result["crt"]
    write_checkpoint(a.ckpt_path, a.out, loaded["prefix"], crt["head"], crt["tau"])
    report = summary(result, list(loaded["task"].class_names))
    Path(a.out).with_suffix(".json").write_text(json.dumps({"ckpt_path": a.ckpt_path, **report}, indent=1))
    pct = lambda v: f"{100 * v:.2f}"
    for key, name in (
        ("plain", "fitted head"),
        ("logit_adjust", "logit adjustment"),
        ("tau_norm", "tau-norm"),
        ("crt", "cRT head"),
    ):
        r = result[key]
        print(
            f"{name:16s} {r['choice']:18s} val OA {pct(r['val']['acc'])} MCA {pct(r['val']['mca'])} | "
            f"test OA {pct(r['test']['acc'])} MCA {pct(r['test']['mca'])} F1 {pct(r['test']['f1_macro'])}"
        )
    print(
        f"wrote {a.out} (cRT head, chosen on validation) and {Path(a.out).with_suffix('.json')}; use it with: "
        f"fer-zoo test --ckpt_path {a.out} --model.init_args.logit_adjust_tau {crt['tau']} (same for predict)"
    )
