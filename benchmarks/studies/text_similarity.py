"""Cosine similarity between E2N's class prompts under each text source (why a cosine classifier on them is hard).

Usage:
    python -m benchmarks.studies.text_similarity --out benchmarks/results/text_similarity/synthetic.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fer_zoo.labels import class_names
from fer_zoo.models.components.text import build_text_encoder, class_prompts
from fer_zoo.models.e2n import E2N_TEMPLATE


def main(argv: list[str] | None = None) -> None:
    """Print and write min/mean/max off-diagonal cosines of the class prompt features."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    names = list(class_names(args.dataset))
    lines = [
        f"# Cosine between E2N class prompts ({args.dataset} classes, template {E2N_TEMPLATE!r})",
        "",
        "| text source | min | mean | max |",
        "|---|---|---|---|",
    ]
    for source, label in (("minilm", "MiniLM (pretrained)"), ("clip", "CLIP ViT-B-16 text tower, random init (seed 0)")):
        torch.manual_seed(0)
        features = build_text_encoder(source, "ViT-B-16")(class_prompts(E2N_TEMPLATE, names))
        cos = features @ features.T
        off = cos[~torch.eye(len(names), dtype=torch.bool)]
        lines.append(f"| {label} | {off.min():.3f} | {off.mean():.3f} | {off.max():.3f} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
