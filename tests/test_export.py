"""fer_zoo.export: ONNX export and its parity check."""

import json

import numpy as np
import torch

from fer_zoo.cli import main
from tests.helpers import CLASSES, best_checkpoint


def test_export_onnx_matches_pytorch_with_a_dynamic_batch(fitted, tmp_path):
    import onnxruntime

    from fer_zoo.checkpoints import load_task

    ckpt = best_checkpoint(fitted)
    main(["export", "--ckpt_path", ckpt, "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert sidecar["class_names"] == list(CLASSES) and sidecar["input"]["shape"] == ["batch", 3, 32, 32]
    assert sidecar["parity"]["max_abs_logit_diff"] < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 32, 32)
    logits, probs = session.run(None, {"images": images.numpy()})
    task, _ = load_task(ckpt)
    with torch.no_grad():
        assert np.abs(logits - task(images).numpy()).max() < 1e-4
    assert probs.shape == (3, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)


