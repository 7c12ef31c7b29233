"""Run the PyPI ``fer`` package (its own pipeline, TensorFlow) on face crops; used by ``benchmarks/peers.py``.

Runs in a separate Python that has ``fer`` and TensorFlow installed (the zoo does not depend on
them). Every crop is passed as the whole face box, as a user with pre-cropped faces would call it::

    FER(mtcnn=False, use_tflite=...).detect_emotions(image_bgr, face_rectangles=[(0, 0, w, h)])

    /path/to/tf-python benchmarks/peers_fer.py faces.npy out.npz [tflite|keras]

``tflite`` (the package default since 25.x: a quantised TFLite model) or ``keras`` (its full-precision
``emotion_model.hdf5``).

``faces.npy``: uint8 ``(N, H, W)`` grey crops. Writes ``probs`` ``(N, 7)`` in fer's label order, the
labels, per-face latency and the package version.
"""

import sys
import time

import numpy as np


def main() -> None:
    """Classify every crop; write probabilities and timing."""
    import importlib.metadata

    from fer.fer import FER

    faces = np.load(sys.argv[1])
    variant = sys.argv[3] if len(sys.argv) > 3 else "tflite"
    detector = FER(mtcnn=False, use_tflite=variant == "tflite")
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    probs = np.zeros((len(faces), len(labels)), np.float32)
    h, w = faces.shape[1:3]
    detector.detect_emotions(np.repeat(faces[0][..., None], 3, 2), face_rectangles=[(0, 0, w, h)])  # warm-up
    start = time.perf_counter()
    for i, face in enumerate(faces):
        result = detector.detect_emotions(np.repeat(face[..., None], 3, 2), face_rectangles=[(0, 0, w, h)])
        probs[i] = [result[0]["emotions"][name] for name in labels]
    seconds = time.perf_counter() - start
    np.savez(
        sys.argv[2],
        probs=probs,
        labels=np.array(labels),
        ms_per_face=np.float64(1000 * seconds / len(faces)),
        version=np.array(importlib.metadata.version("fer")),
    )


if __name__ == "__main__":
    main()
