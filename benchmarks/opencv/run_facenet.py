"""Run FaceNet's frozen graph with OpenCV's ``cv2.dnn`` (the package's own runtime), in a side Python.

Runs in a Python that has ``opencv-python-headless==4.6.0.66`` (OpenCV 4.6 reads this graph; 4.14 does not) and
numpy; it imports nothing from fer_zoo. Reads NCHW float32 prewhitened faces from ``.npy`` and writes the
embeddings (``embeddings`` node) to ``.npy``::

    /path/cv-python benchmarks/opencv/run_facenet.py graph_final.pb faces.npy embeddings.npy
"""

import sys
import time

import cv2
import numpy as np


def main(graph: str, faces: str, out: str) -> None:
    net = cv2.dnn.readNetFromTensorflow(graph)
    batch = np.load(faces).astype(np.float32)
    start = time.perf_counter()
    rows = []
    for face in batch:  # one face per call, as the package does (its graph's Reshape has a fixed batch of 1)
        net.setInput(face[None])
        rows.append(net.forward("embeddings").reshape(-1))
    embeddings = np.stack(rows)
    np.save(out, embeddings.astype(np.float32))
    print(f"cv2 {cv2.__version__}: {batch.shape} -> {embeddings.shape} in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main(*sys.argv[1:4])
