"""Where one training step of a row spends its time: forward per top-level module, backward, optimiser step.

``benchmarks.speed`` says how fast a row trains; this says why. For each experiment row it builds the row's model,
takes batches from the row's own data module beforehand (no loader in the timing), and runs ``training_loss``,
``backward`` and an AdamW step, with the row's ``channels_last`` setting. Every forward call is charged to the
top-level module it belongs to (``model.<name>``), counted once at its outermost call, so a submodule that a method
calls directly (``self.landmark_net.pyramid(x)``, ``self.clip.image_tokens(x)``) is charged to its parent, and a
module inside a ``ModuleList`` to the list. *glue* is the forward time no module call covers (the method's own
tensor code: losses, concatenations, cdist). Usage::

    python -m benchmarks.profile_step --dataset ferplus --data-root ../shared/data/ferplus \\
        --rows face-baseline,face-lacovl --out benchmarks/results/speed/ferplus_step_profile.md
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from benchmarks.publish import finish_report
from benchmarks.recipes import experiment_config
from benchmarks.speed import row_batches, row_parser, to_memory_format
from fer_zoo.registry import instantiate


class ForwardClock:
    """Forward time per top-level module of ``model``, each call counted once at its outermost module.

    Args:
        model: the model whose direct children name the parts.
        clock: a monotonic clock in seconds (``time.perf_counter``; tests pass a fake one).
    """

    def __init__(self, model: nn.Module, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self._depth = 0
        self._started = 0.0
        self._handles = []
        for name, child in model.named_children():
            for module in child.modules():
                self._handles.append(module.register_forward_pre_hook(self._enter))
                self._handles.append(module.register_forward_hook(self._leave(name)))

    def _enter(self, module: nn.Module, inputs: Any) -> None:
        if self._depth == 0:
            self._started = self.clock()
        self._depth += 1

    def _leave(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self._depth -= 1
            if self._depth == 0:
                self.seconds[name] += self.clock() - self._started

        return hook

    def reset(self) -> None:
        """Forget what was timed so far (after warm-up steps)."""
        self.seconds.clear()

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()


def profile_row(config: dict[str, Any], data_root: str | None, steps: int) -> dict[str, Any]:
    """Seconds per training step of one row: ``forward`` per part, ``glue``, ``backward``, ``optimizer``.

    Two warm-up steps, then ``steps`` timed steps cycling over the batches taken beforehand.
    """
    datamodule, taken = row_batches(config, data_root, min(steps, 8) + 2)
    torch.manual_seed(0)
    model = instantiate(config["model"], num_classes=datamodule.num_classes, class_names=datamodule.class_names)
    channels_last = bool(getattr(model, "hparams", {}).get("channels_last", False))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    forward_clock = ForwardClock(model)
    totals = collections.Counter()
    images = 0
    for step in range(steps + 2):
        if step == 2:
            forward_clock.reset()
        batch = to_memory_format(taken[step % len(taken)], channels_last)
        start = time.perf_counter()
        loss = model.training_loss(batch)[0]
        forward_done = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        backward_done = time.perf_counter()
        opt.step()
        if step >= 2:
            totals["forward"] += forward_done - start
            totals["backward"] += backward_done - forward_done
            totals["optimizer"] += time.perf_counter() - backward_done
            images += len(batch["label"])
    forward_clock.remove()
    parts = {name: seconds / steps for name, seconds in forward_clock.seconds.items()}
    forward = totals["forward"] / steps
    return {
        "parts": dict(sorted(parts.items(), key=lambda item: -item[1])),
        "glue": max(forward - sum(parts.values()), 0.0),
        "forward": forward,
        "backward": totals["backward"] / steps,
        "optimizer": totals["optimizer"] / steps,
        "img_per_s": images / sum(totals.values()),
        "batch": len(taken[0]["label"]),
        "channels_last": channels_last,
    }


def row_table(row: str, result: dict[str, Any]) -> list[str]:
    """One row's Markdown lines: each part's seconds per step and share of the whole step."""
    step = result["forward"] + result["backward"] + result["optimizer"]
    lines = [
        f"### {row}",
        "",
        f"Batch {result['batch']}, channels-last {str(result['channels_last']).lower()}: {step:.2f} s a step, "
        f"{result['img_per_s']:.1f} img/s (forward {result['forward']:.2f} s, backward {result['backward']:.2f} s, "
        f"optimiser {result['optimizer']:.2f} s).",
        "",
        "| part | forward s / step | share of the step |",
        "|---|---|---|",
    ]
    for name, seconds in [*result["parts"].items(), ("(glue: the method's own tensor code)", result["glue"])]:
        lines.append(f"| {name} | {seconds:.3f} | {100 * seconds / step:.1f} % |")
    lines += [
        f"| backward (all parts) | {result['backward']:.3f} | {100 * result['backward'] / step:.1f} % |",
        f"| optimiser step | {result['optimizer']:.3f} | {100 * result['optimizer'] / step:.1f} % |",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    """Profile every row and write the Markdown report."""
    p = row_parser(__doc__)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per row (after 2 warm-up steps)")
    args = p.parse_args(argv)
    lines = [
        f"# Where a training step goes, {args.dataset}",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.steps} timed steps after 2 warm-up "
        "steps on batches of the row's own data module (no loader in the timing). Forward time is charged to the "
        "top-level module at its outermost call.",
        "",
    ]
    for row in args.rows.split(","):
        lines += row_table(row, profile_row(experiment_config(args.dataset, row), args.data_root, args.steps))
    finish_report(lines, "benchmarks.profile_step", list(sys.argv[1:] if argv is None else argv), args.out)


if __name__ == "__main__":
    main()
