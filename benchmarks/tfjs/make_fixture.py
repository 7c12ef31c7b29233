"""Make the TF.js parity fixtures of the imported human-models networks (run once, committed).

For each model, a fixed list of real FERPlus test faces (and their mirror images) is prepared by
:func:`fer_zoo.human_models.load_face_rgb`, run through the **original TF.js graph** in Node with
TF.js' pure-JS CPU backend (``run_graph.mjs``), and the outputs are stored in
``tests/fixtures/human_models/<tag>.npz`` with a JSON note (inputs, TF.js version, command). The
test ``tests/models/components/test_faceres.py`` rebuilds the same inputs and compares PyTorch.

Usage (needs Node with ``npm install @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-backend-cpu@4.22.0
@tensorflow/tfjs-converter@4.22.0`` in ``--node-modules``' parent, and the package folder)::

    python -m benchmarks.tfjs.make_fixture --models-dir /path/package/models --node-dir /path/with/node_modules
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from fer_zoo.human_models import MODELS, load_face_rgb

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "human_models"
FERPLUS_TEST = ROOT.parent / "shared" / "data" / "ferplus" / "FER2013Test"
#: Eight fixed FERPlus test faces (different people); the fixture also holds their mirror images.
FACES = ("fer0032220.png", "fer0032222.png", "fer0032223.png", "fer0032224.png",
         "fer0032225.png", "fer0032226.png", "fer0032227.png", "fer0032228.png")  # fmt: skip
OUTPUTS = {
    "faceres": ("global_pooling/Mean", "age_pred/Softmax", "gender_pred/Sigmoid"),
    "mobileface": ("batchnorm0/add_1",),
}


def parity_batch(size: int, root: Path = FERPLUS_TEST) -> np.ndarray:
    """The fixture's inputs: the faces, then their mirror images, as NHWC float32 0..255."""
    faces = np.stack([load_face_rgb(root / name, size) for name in FACES])
    return np.concatenate([faces, faces[:, :, ::-1]])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models-dir", required=True, help="the package's models/ folder")
    p.add_argument("--node-dir", required=True, help="folder whose node_modules holds @tensorflow/tfjs-*")
    p.add_argument("--tags", nargs="+", default=list(MODELS))
    args = p.parse_args(argv)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    node_dir = Path(args.node_dir)
    shutil.copy(Path(__file__).parent / "run_graph.mjs", node_dir / "run_graph.mjs")
    for tag in args.tags:
        entry = MODELS[tag]
        batch = parity_batch(entry.input_size)
        outputs = OUTPUTS[entry.builder]
        with tempfile.TemporaryDirectory() as tmp:
            inputs, result = Path(tmp) / "input.f32", Path(tmp) / "out.json"
            inputs.write_bytes(batch.astype("<f4").tobytes())
            cmd = ["node", "run_graph.mjs", str(Path(args.models_dir) / entry.graph), str(inputs),
                   ",".join(map(str, batch.shape)), str(result), *outputs]  # fmt: skip
            subprocess.run(cmd, cwd=node_dir, check=True)
            out = json.loads(result.read_text())
        arrays = {
            name.split("/")[0]: np.asarray(o["values"], np.float32).reshape(o["shape"])
            for name, o in out["outputs"].items()
        }
        np.savez_compressed(FIXTURES / f"{tag}.npz", **arrays)
        note = {
            "tag": tag,
            "graph": entry.graph,
            "faces": [f"FER2013Test/{n}" for n in FACES] + [f"FER2013Test/{n} (mirrored)" for n in FACES],
            "preprocessing": f"fer_zoo.human_models.load_face_rgb(path, {entry.input_size}): RGB 0..255, bilinear",
            "outputs": list(out["outputs"]),
            "tfjs": f"@tensorflow/tfjs-core {out['tfjs']}, backend {out['backend']} (pure JS)",
            "tfjs_seconds": out["seconds"],
            "command": "python -m benchmarks.tfjs.make_fixture --models-dir <package/models> --node-dir <dir>",
        }
        (FIXTURES / f"{tag}.json").write_text(json.dumps(note, indent=1) + "\n")
        print(tag, {k: v.shape for k, v in arrays.items()}, f"{out['seconds']:.1f}s")


if __name__ == "__main__":
    main()
