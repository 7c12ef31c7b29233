"""Per-face latency on this machine, one process after another: the zoo's model in PyTorch and in ONNX
(onnxruntime) against the PyPI ``fer`` package.

Each face is classified alone (batch 1, one thread, after a warm-up), timed from the 48x48 crop in
memory to class probabilities, preprocessing included: the zoo's evaluation transform
(``FERTransform``) then the network; ``fer``: its ``detect_emotions`` with the whole crop as the face
box (run by ``benchmarks/peers_fer.py`` in a Python that has ``fer`` and TensorFlow).

Usage::

    python -m benchmarks.latency --root ../shared/data/ferplus --ckpt CKPT --fer-python /tmp/tfenv/bin/python

Writes ``benchmarks/results/latency/README.md`` (with the exported model's parity).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.paths import RESULTS


def timed(fn, inputs: list, warmup: int = 10) -> float:
    """Median milliseconds of ``fn(x)`` over ``inputs`` (after ``warmup`` calls)."""
    for x in inputs[:warmup]:
        fn(x)
    times = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    """Time the three paths and write the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="FERPlus root")
    p.add_argument("--ckpt", required=True, help="a fer-zoo checkpoint (exported to ONNX here)")
    p.add_argument("--fer-python", default=None, help="a Python with the fer package and TensorFlow")
    p.add_argument("--faces", type=int, default=300)
    p.add_argument("--out", default=str(RESULTS / "latency" / "README.md"))
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    import onnxruntime

    from benchmarks.peers import run_fer_package
    from fer_zoo.checkpoints import load_task
    from fer_zoo.datasets.ferplus import FERPlus
    from fer_zoo.export import export_onnx
    from fer_zoo.transforms import FERTransform

    test = FERPlus(a.root, "test")
    faces = [test.image(i) for i in range(min(a.faces, len(test)))]
    task, meta = load_task(a.ckpt)
    size = meta["datamodule_hyper_parameters"].get("image_size") or 64
    transform = FERTransform(size, "none", 0.0)

    def prepare(face: np.ndarray) -> torch.Tensor:
        return transform({"image": face, "label": 0, "index": 0})["image"][None]

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        sidecar = export_onnx(a.ckpt, onnx_path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

        def torch_path(face: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return task(prepare(face)).softmax(-1).numpy()

        def onnx_path_fn(face: np.ndarray) -> np.ndarray:
            return session.run(["probs"], {"images": prepare(face).numpy()})[0]

        rows = [
            (f"fer-zoo {sidecar['model']} ({size} px), PyTorch", timed(torch_path, faces)),
            (f"fer-zoo {sidecar['model']} ({size} px), ONNX Runtime {onnxruntime.__version__}", timed(onnx_path_fn, faces)),
            ("fer-zoo transform alone (crop to normalised tensor)", timed(prepare, faces)),
        ]
        agree = np.mean([torch_path(f).argmax() == onnx_path_fn(f).argmax() for f in faces])
    if a.fer_python:
        grey = np.stack(faces)
        for variant in ("tflite", "keras"):
            _, info = run_fer_package(grey, a.fer_python, variant)
            rows.append((f"fer {info['version']} (PyPI), {variant}: detect_emotions (mean, not median)", info["ms_per_face"]))
    params = sum(p.numel() for p in task.parameters()) / 1e6
    lines = [
        "# Per-face latency: fer-zoo (PyTorch, ONNX) against the PyPI fer package",
        "",
        "```",
        f"python -m benchmarks.latency {' '.join(sys.argv[1:] if argv is None else argv)}",
        "```",
        "",
        f"{len(faces)} FERPlus test faces (48x48), one at a time, 1 thread, median ms per face after 10 warm-up calls "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores; other jobs shared the machine, so "
        "compare rows with each other, not with other tables). Checkpoint: "
        f"`{a.ckpt}` ({params:.2f} M parameters).",
        "",
        "| path | ms / face |",
        "|---|---:|",
        *[f"| {name} | {ms:.2f} |" for name, ms in rows],
        "",
        f"ONNX export parity (`fer-zoo export`): max |Δlogit| {sidecar['parity']['max_abs_logit_diff']:.2e} on a random "
        f"batch of {sidecar['parity']['batch']}; same top-1 on {100 * agree:.1f} % of these {len(faces)} faces.",
    ]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
