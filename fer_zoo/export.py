"""``fer-zoo export``: a trained checkpoint as an ONNX model (inference path only), checked against PyTorch.

The exported graph maps images ``(N, 3, S, S)`` (RGB, ImageNet-normalised, as the zoo's
evaluation transform gives them; N is dynamic) to ``logits`` and ``probs`` ``(N, C)``. A JSON
sidecar (``<out>.json``) records the class names, input size, normalisation and the parity check
(max absolute logit difference between onnxruntime and PyTorch on a random batch).

    fer-zoo export --ckpt_path runs/.../best.ckpt --format onnx --out model.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fer_zoo.checkpoints import load_task
from fer_zoo.transforms.augment import IMAGENET_MEAN, IMAGENET_STD

FORMATS = ("onnx",)


@contextlib.contextmanager
def _named_failure(model: str, out: Path):
    """Turn an exporter failure into one line naming the model and the unsupported operation."""
    try:
        yield
    except Exception as error:  # the exporter raises many types; the first line says what is unsupported
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{model} cannot be exported to {out.suffix[1:]}: {first[:300]}") from None


class InferencePath(nn.Module):
    """The model's inference path with probabilities: ``images -> (logits, probs)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and softmax probabilities."""
        logits = self.model(images)
        return logits, logits.softmax(-1)


def export_onnx(
    ckpt_path: str | Path, out: str | Path, opset: int = 17, image_size: int | None = None, check_batch: int = 4
) -> dict[str, Any]:
    """Export a checkpoint to ONNX and compare onnxruntime with PyTorch.

    Args:
        ckpt_path: a ``fer-zoo fit`` checkpoint.
        out: the ``.onnx`` file to write (a ``.json`` sidecar is written beside it).
        opset: ONNX opset.
        image_size: input side (default: the training size stored in the checkpoint).
        check_batch: batch size of the parity check (differs from the export batch of 1, so a
            broken dynamic batch axis fails the check).

    Returns:
        The sidecar dict (class names, input spec, parity).
    """
    task, meta = load_task(ckpt_path)
    size = image_size or meta["datamodule_hyper_parameters"].get("image_size") or 64
    wrapper = InferencePath(task).eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, 3, size, size)
    with torch.no_grad(), _named_failure(type(task).__name__, out):
        torch.onnx.export(
            wrapper,
            (example,),
            str(out),
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency, stable for CNN/ViT inference paths
            opset_version=opset,
            input_names=["images"],
            output_names=["logits", "probs"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "probs": {0: "batch"}},
        )
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    images = torch.randn(check_batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = wrapper(images)[0].numpy()
    logits = session.run(["logits"], {"images": images.numpy()})[0]
    diff = float(np.abs(logits - reference).max())
    sidecar = {
        "checkpoint": str(ckpt_path),
        "model": type(task).__name__,
        "class_names": list(task.class_names),
        "input": {"name": "images", "shape": ["batch", 3, size, size], "color": "RGB", "range": "0..1 then "
                  "(x - mean) / std", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "outputs": ["logits", "probs"],
        "opset": opset,
        "parity": {"batch": check_batch, "max_abs_logit_diff": diff, "same_argmax": bool(
            (logits.argmax(1) == reference.argmax(1)).all())},
    }
    out.with_suffix(out.suffix + ".json").write_text(json.dumps(sidecar, indent=1))
    if diff > 1e-3:
        raise RuntimeError(f"{out}: onnxruntime differs from PyTorch by {diff:.2e} (max abs logit); not usable")
    return sidecar


def main(args: list[str]) -> None:
    """``fer-zoo export`` entry point."""
    p = argparse.ArgumentParser(prog="fer-zoo export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt_path", required=True, help="checkpoint written by fer-zoo fit")
    p.add_argument("--format", default="onnx", choices=FORMATS)
    p.add_argument("--out", default=None, help="output file (default: the checkpoint's name with .onnx)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--image_size", type=int, default=None, help="input side (default: the training size)")
    a = p.parse_args(args)
    if not Path(a.ckpt_path).is_file():
        raise SystemExit(f"fer-zoo export: --ckpt_path {a.ckpt_path} does not exist")
    out = Path(a.out) if a.out else Path(a.ckpt_path).with_suffix(".onnx")
    try:
        sidecar = export_onnx(a.ckpt_path, out, a.opset, a.image_size)
    except ValueError as error:
        raise SystemExit(f"fer-zoo export: {error}") from None
    print(f"wrote {out} ({sidecar['model']}, {len(sidecar['class_names'])} classes, input "
          f"{sidecar['input']['shape']}); onnxruntime vs PyTorch: max |Δlogit| "
          f"{sidecar['parity']['max_abs_logit_diff']:.2e} on a batch of {sidecar['parity']['batch']}")
