"""Parameter budgets of the vision-language methods on real CLIP architectures (random init, no download).

    python -m benchmarks.studies.params            # writes benchmarks/results/params/README.md

For each CLIP architecture: total, trainable and inference parameters of MPA-FER, E2N (ResNet-18)
and the CLIP baselines, with the trainable size in MB (fp32 and fp16). The MPA paper reports
0.218 MB (ViT-B/16) and 0.443 MB (ViT-L/14) of learnable parameters. The last column is the size
of the model state a checkpoint stores when CLIP is loaded from a weight file (the random tower is
written to a temporary open_clip ``.safetensors`` first): frozen weights that the spec restores are
left out (``model.checkpoint_frozen=false``, the default).
"""

from __future__ import annotations

import argparse
import io
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.paths import RESULTS
from fer_zoo.labels import class_names
from fer_zoo.models import E2N, MPA, CLIPLinearProbe, CLIPZeroShot


def checkpoint_mb(model: torch.nn.Module) -> float:
    """Bytes of the model state a Lightning checkpoint of ``model`` stores, in MB."""
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.tell() / 2**20


def row(name: str, arch: str, model: torch.nn.Module) -> str:
    """One table row: total, trainable, inference parameters, trainable MB and checkpoint MB."""
    total = model.num_parameters()
    trainable = model.num_parameters(trainable_only=True)
    inference = sum(p.numel() for m in model.inference_modules() for p in m.parameters())
    return (
        f"| {name} | {arch} | {total / 1e6:.2f} M | {trainable:,} | {inference / 1e6:.2f} M "
        f"| {trainable * 4 / 2**20:.3f} | {trainable * 2 / 2**20:.3f} | {checkpoint_mb(model):.2f} |"
    )


def clip_weight_file(arch: str, folder: str) -> str:
    """Write a randomly initialised CLIP of ``arch`` as an open_clip weight file; return its path."""
    from safetensors.torch import save_file

    from fer_zoo.models.components.clip import CLIPEncoder

    path = Path(folder) / f"{arch}.safetensors"
    state = CLIPEncoder(arch).model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)


def main(argv: list[str] | None = None) -> None:
    """Build each model on each architecture and tabulate its parameters."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["ViT-B-16", "ViT-L-14"])
    p.add_argument("--dataset", default="rafdb", help="whose classes size the heads")
    p.add_argument("--out", default=str(RESULTS / "params" / "README.md"))
    args = p.parse_args(argv)
    names = list(class_names(args.dataset))
    common = {"num_classes": len(names), "class_names": names}
    lines = [
        "# Parameter budgets of the vision-language methods",
        "",
        f"Command: `python -m benchmarks.studies.params {shlex.join(sys.argv[1:] if argv is None else argv)}` "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores; random init, {len(names)} classes of {args.dataset}).",
        "",
        "Trainable MB counts 4 bytes (fp32) or 2 bytes (fp16) per trainable parameter. The MPA paper reports "
        "0.218 MB (ViT-B/16) and 0.443 MB (ViT-L/14).",
        "",
        "| model | CLIP | total params | trainable params | inference params | trainable MB fp32 | trainable MB fp16 "
        "| checkpoint MB (CLIP from a file) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for arch in args.archs:
            weights = clip_weight_file(arch, folder)
            for name, build in (
                ("mpa", MPA),
                ("clip-linear", CLIPLinearProbe),
                ("clip-zeroshot", CLIPZeroShot),
            ):
                lines.append(row(name, arch, build(clip_arch=arch, clip_weights=weights, **common)))
                print(lines[-1], flush=True)
    lines.append(row("e2n (ResNet-18)", "ViT-B-16 text", E2N(clip_arch="ViT-B-16", **common)))
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
