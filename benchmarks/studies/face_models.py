"""Do the imported human-models networks behave as face models? (FERPlus test faces, no training.)

For each imported tag and for a randomly initialised network of the same architecture, embed N
FERPlus test faces and their mirror images and report:

- mirror retrieval: share of faces whose nearest neighbour (cosine) among all mirrored faces is
  their own mirror image (chance: 1/N);
- AUC of "same image, mirrored" pairs against pairs of two different faces;
- for FaceRes, its age and gender heads: mean predicted age and the share predicted male.

Usage::

    python -m benchmarks.studies.face_models --root ../shared/data/ferplus --n 300

Writes ``benchmarks/results/face_models/ferplus.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.paths import RESULTS
from fer_zoo import human_models
from fer_zoo.weights import load_state_dict


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


@torch.no_grad()
def evaluate(net: torch.nn.Module, faces: torch.Tensor, builder: str, batch: int = 32) -> dict:
    """Embedding statistics of ``faces`` (NCHW, 0..255) and their mirror images."""
    net.eval()
    embed, extra = [], {"age": [], "male": []}
    for flip in (False, True):
        chunks = []
        for i in range(0, len(faces), batch):
            x = faces[i : i + batch].flip(-1) if flip else faces[i : i + batch]
            if builder == "faceres":
                heads = net.heads(x)
                chunks.append(heads["feats"])
                if not flip:
                    years = torch.arange(100, dtype=torch.float32)
                    extra["age"].append((heads["age"] * years).sum(-1))
                    extra["male"].append(heads["male"])
            else:
                chunks.append(net.embed(x))
        embed.append(F.normalize(torch.cat(chunks), dim=1))
    sim = (embed[0] @ embed[1].T).numpy()
    n = len(sim)
    off = ~np.eye(n, dtype=bool)
    out = {
        "mirror_top1": float((sim.argmax(1) == np.arange(n)).mean()),
        "auc": auc(np.diag(sim), sim[off]),
        "same_mean": float(np.diag(sim).mean()),
        "other_mean": float(sim[off].mean()),
    }
    if extra["age"]:
        out["age_mean"] = float(torch.cat(extra["age"]).mean())
        out["male_share"] = float((torch.cat(extra["male"]) > 0.5).float().mean())
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/ferplus")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    files = sorted((Path(args.root) / "FER2013Test").glob("*.png"))
    pick = np.random.default_rng(args.seed).choice(len(files), args.n, replace=False)
    rows = []
    for tag, entry in human_models.MODELS.items():
        path = human_models.weight_path(tag)
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run `make human-models` first")
        faces = np.stack([human_models.load_face_rgb(files[i], entry.input_size) for i in pick])
        x = torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous()
        for init in ("imported", "random init"):
            net = human_models.build(tag, "raw255")
            if init == "imported":
                net.load_state_dict(load_state_dict(path), strict=True)
            started = time.time()
            stats = evaluate(net, x, entry.builder)
            stats["img_s"] = 2 * len(x) / (time.time() - started)
            rows.append((tag, entry.input_size, init, stats))
            print(tag, init, {k: round(v, 4) for k, v in stats.items()}, flush=True)
    lines = [
        "# Imported face networks on FERPlus test faces (no training)",
        "",
        f"Command: `python -m benchmarks.studies.face_models {' '.join(argv if argv is not None else sys.argv[1:])}` "
        f"({time.strftime('%Y-%m-%d')}, 2 CPU cores shared with training jobs, {torch.get_num_threads()} thread(s)).",
        "",
        f"{args.n} FERPlus test faces (seed {args.seed}), grey replicated to RGB and resized bilinearly to each "
        "network's input size, and their mirror images. Embedding: FaceRes' 256-d `feats` layer, MobileFace's "
        "256-d output; cosine similarity. *Mirror top-1*: the face's nearest mirrored face is its own mirror "
        f"(chance {1 / args.n:.4f}). *AUC*: same-image-mirrored pairs against pairs of two different faces.",
        "",
        "| tag | input | weights | mirror top-1 | AUC | cos same | cos other | mean age | share male | img/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tag, size, init, s in rows:
        age = f"{s['age_mean']:.1f}" if "age_mean" in s else "–"
        male = f"{s['male_share']:.2f}" if "male_share" in s else "–"
        lines.append(
            f"| {tag} | {size} | {init} | {s['mirror_top1']:.3f} | {s['auc']:.4f} | {s['same_mean']:.3f} | "
            f"{s['other_mean']:.3f} | {age} | {male} | {s['img_s']:.0f} |"
        )
    (RESULTS / "face_models").mkdir(parents=True, exist_ok=True)
    (RESULTS / "face_models" / "ferplus.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
