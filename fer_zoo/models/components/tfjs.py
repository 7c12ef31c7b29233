"""Read a TF.js graph model (``model.json`` + weight shards) into numpy, with no TensorFlow.

A TF.js graph model is a JSON file with the graph (``modelTopology.node``: name, op, inputs,
attributes) and a ``weightsManifest``: groups of weight entries (name, shape, dtype, optional
``quantization``) whose bytes lie, in entry order, in the concatenated shard files. This module
decodes those bytes (float32, int32, float16- and affine uint8/uint16-quantised) so a network
rebuilt in PyTorch can take them by name.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16}
_QUANTISED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


@dataclass
class GraphModel:
    """A parsed TF.js graph model.

    Attributes:
        path: the ``model.json`` file.
        nodes: graph nodes in file order (dicts with ``name``, ``op``, ``input``, ``attr``).
        weights: decoded weights by name, as float32 (quantised ones de-quantised) or int32.
        meta: ``format``, ``generatedBy``, ``convertedBy`` and ``signature`` of the file.
    """

    path: Path
    nodes: list[dict]
    weights: dict[str, np.ndarray]
    meta: dict

    def node(self, name: str) -> dict:
        """The node called ``name`` (KeyError naming the file otherwise)."""
        for node in self.nodes:
            if node["name"] == name:
                return node
        raise KeyError(f"{self.path}: no node {name!r}")

    def ops(self, op: str) -> list[dict]:
        """Nodes of one op type, in graph order."""
        return [n for n in self.nodes if n["op"] == op]


def read_graph_model(path: str | Path) -> GraphModel:
    """Parse ``path`` (a TF.js ``*.json``) and decode its weight shards.

    Raises:
        FileNotFoundError: naming the JSON or a missing shard.
        ValueError: naming the file when the shards hold fewer bytes than the manifest lists,
            or an entry has an unknown dtype.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TF.js model file not found: {path}")
    spec = json.loads(path.read_text())
    if "weightsManifest" not in spec or "modelTopology" not in spec:
        raise ValueError(f"{path}: not a TF.js graph model (no weightsManifest/modelTopology)")
    weights: dict[str, np.ndarray] = {}
    for group in spec["weightsManifest"]:
        shards = [path.parent / p for p in group["paths"]]
        for shard in shards:
            if not shard.is_file():
                raise FileNotFoundError(f"{path}: weight shard {shard} is missing")
        blob = b"".join(s.read_bytes() for s in shards)
        offset = 0
        for entry in group["weights"]:
            quant = entry.get("quantization")
            dtype_name = quant["dtype"] if quant else entry["dtype"]
            dtype = (_QUANTISED if quant else _DTYPES).get(dtype_name)
            if dtype is None:
                raise ValueError(f"{path}: weight {entry['name']!r} has unsupported dtype {dtype_name!r}")
            count = int(np.prod(entry["shape"])) if entry["shape"] else 1
            size = count * np.dtype(dtype).itemsize
            if offset + size > len(blob):
                raise ValueError(
                    f"{path}: shards end at byte {len(blob)} but {entry['name']!r} needs bytes {offset}..{offset + size}"
                )
            raw = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
            offset += size
            if quant and dtype_name == "float16":
                value = raw.astype(np.float32)
            elif quant:  # affine: value = q * scale + min
                value = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
            else:
                value = raw.copy()
            weights[entry["name"]] = value.reshape(entry["shape"])
        if offset != len(blob):
            raise ValueError(f"{path}: shards hold {len(blob)} bytes, the manifest lists {offset}")
    meta = {k: spec.get(k) for k in ("format", "generatedBy", "convertedBy", "signature")}
    return GraphModel(path, spec["modelTopology"].get("node", []), weights, meta)


def graph_weight(weights: dict[str, np.ndarray], name: str, model: str) -> np.ndarray:
    """The graph weight ``name`` (KeyError naming ``model`` and the weight when it is missing)."""
    if name not in weights:
        raise KeyError(f"{model}: the graph has no weight {name!r}")
    return weights[name]


def folded_bn_state(prefix: str, scale: np.ndarray, shift: np.ndarray, eps: float) -> dict[str, torch.Tensor]:
    """State of a ``BatchNorm`` that applies ``x * scale + shift`` in eval mode (a BN the converter folded away).

    Running mean 0 and running variance ``1 - eps`` make it divide by exactly 1, so the folded
    scale and shift become its affine weight and bias and it fine-tunes like any BN.
    """
    n = len(shift)
    return {
        f"{prefix}.weight": torch.from_numpy(np.asarray(scale, np.float32).copy()),
        f"{prefix}.bias": torch.from_numpy(np.asarray(shift, np.float32).copy()),
        f"{prefix}.running_mean": torch.zeros(n),
        f"{prefix}.running_var": torch.full((n,), 1.0 - eps),
        f"{prefix}.num_batches_tracked": torch.zeros((), dtype=torch.long),
    }



def _attr_list(node: dict, key: str) -> list[int]:
    return [int(v) for v in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def _attr_str(node: dict, key: str) -> str:
    value = node.get("attr", {}).get(key, {}).get("s", "")
    return base64.b64decode(value).decode() if value else ""


def _attr_strings(node: dict, key: str) -> list[str]:
    return [base64.b64decode(v).decode() for v in node.get("attr", {}).get(key, {}).get("list", {}).get("s", [])]


def same_pad(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    """TensorFlow ``SAME`` padding of an NCHW tensor (the extra pixel goes bottom/right)."""
    pads = []
    for size, k, s in zip(reversed(x.shape[-2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


def _source(name: str) -> str:
    """The node an input names (``^ctrl`` and ``node:1`` forms reduced to the node)."""
    return name.lstrip("^").split(":")[0]


def topological_order(nodes: list[dict]) -> list[dict]:
    """``nodes`` ordered so each comes after the nodes it reads.

    A frozen GraphDef need not be in that order; file order is kept where it already is one. Inputs that are not
    among ``nodes`` (constants) are ignored.
    """
    by_name = {n["name"]: n for n in nodes}
    done: set[str] = set()
    out: list[dict] = []
    for start in nodes:
        stack = [(start, False)]
        while stack:
            node, expanded = stack.pop()
            if node["name"] in done:
                continue
            if expanded:
                done.add(node["name"])
                out.append(node)
                continue
            stack.append((node, True))
            for name in reversed(node.get("input", [])):
                source = by_name.get(_source(name))
                if source is not None and source["name"] not in done:
                    stack.append((source, False))
    return out


class GraphRunner(torch.nn.Module):
    """Runs a small TF.js graph model as it is (inference only, NCHW inside), for peer models and parity.

    Supports the ops of plain CNN classifiers and of frozen TF GraphDefs such as FaceNet's: ``_FusedConv2D``
    (BiasAdd, then Relu/Relu6), ``Conv2D``, ``DepthwiseConv2dNative``, ``BiasAdd``, ``MaxPool``, ``AvgPool``,
    ``AddV2``/``Add``, ``Mul``, ``Relu``, ``Relu6``, ``ConcatV2`` (channels), ``Mean`` over H and W, ``Reshape`` to
    ``(B, -1)``, ``MatMul``, ``FusedBatchNorm`` (inference), ``Square``, ``Sum`` (last axis), ``Maximum``,
    ``Rsqrt``, ``Softmax``, ``Identity``. Any other op is an error naming it.
    """

    SUPPORTED = {"Const", "Placeholder", "_FusedConv2D", "Conv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool",
                 "AddV2", "Add", "Relu", "Relu6", "Mean", "Softmax", "Identity", "BiasAdd", "Mul", "ConcatV2",
                 "Reshape", "MatMul", "FusedBatchNorm", "Square", "Sum", "Maximum", "Rsqrt"}

    def __init__(self, graph: GraphModel) -> None:
        super().__init__()
        unknown = sorted({n["op"] for n in graph.nodes} - self.SUPPORTED)
        if unknown:
            raise ValueError(f"{graph.path}: GraphRunner does not support the ops {unknown}")
        self.nodes = topological_order([n for n in graph.nodes if n["op"] != "Const"])
        self.consts = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in graph.weights.items()}
        consumed = {_source(i) for n in self.nodes for i in n.get("input", [])}
        sinks = [n["name"] for n in self.nodes if n["name"] not in consumed]
        self.output = sinks[-1] if sinks else graph.nodes[-1]["name"]

    @torch.no_grad()
    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        """Evaluate the graph on an NHWC float input; returns its last node's value."""
        values: dict[str, torch.Tensor] = {}

        def get(name: str) -> torch.Tensor:
            name = name.split(":")[0]
            return values[name] if name in values else self.consts[name]

        for node in self.nodes:
            op, inputs = node["op"], [i for i in node.get("input", []) if not i.startswith("^")]
            if op == "Placeholder":
                out = x_nhwc.permute(0, 3, 1, 2)
            elif op in ("_FusedConv2D", "Conv2D", "DepthwiseConv2dNative"):
                x, kernel = get(inputs[0]), get(inputs[1])
                stride = tuple(_attr_list(node, "strides")[1:3]) or (1, 1)
                dil = tuple(_attr_list(node, "dilations")[1:3]) or (1, 1)
                if op == "DepthwiseConv2dNative":  # HWC1 -> C,1,H,W
                    weight, groups = kernel.permute(2, 3, 0, 1).reshape(-1, 1, *kernel.shape[:2]), x.shape[1]
                else:  # HWIO -> OIHW
                    weight, groups = kernel.permute(3, 2, 0, 1), 1
                if _attr_str(node, "padding") == "SAME":
                    size = tuple((k - 1) * d + 1 for k, d in zip(weight.shape[-2:], dil))
                    x = same_pad(x, size, stride)
                out = F.conv2d(x, weight, None, stride, 0, dil, groups)
                if op == "_FusedConv2D":
                    fused = _attr_strings(node, "fused_ops")
                    if fused[:1] != ["BiasAdd"] or any(f not in ("BiasAdd", "Relu", "Relu6") for f in fused):
                        raise ValueError(f"{node['name']}: unsupported fused ops {fused}")
                    out = out + get(inputs[2]).view(1, -1, 1, 1)
                    if "Relu" in fused:
                        out = out.relu()
                    if "Relu6" in fused:
                        out = out.clamp(0, 6)
            elif op in ("MaxPool", "AvgPool"):
                x = get(inputs[0])
                k, st = tuple(_attr_list(node, "ksize")[1:3]), tuple(_attr_list(node, "strides")[1:3])
                same = _attr_str(node, "padding") == "SAME"
                if op == "MaxPool":
                    out = F.max_pool2d(same_pad(x, k, st, float("-inf")) if same else x, k, st)
                else:  # TF averages over the valid pixels only
                    ones = torch.ones_like(x[:, :1])
                    pad = (lambda t: same_pad(t, k, st)) if same else (lambda t: t)
                    out = F.avg_pool2d(pad(x), k, st) / F.avg_pool2d(pad(ones), k, st)
            elif op in ("AddV2", "Add"):
                out = get(inputs[0]) + get(inputs[1])
            elif op == "Relu":
                out = get(inputs[0]).relu()
            elif op == "Relu6":
                out = get(inputs[0]).clamp(0, 6)
            elif op == "Mean":
                axes = sorted(int(a) for a in np.atleast_1d(self.consts[inputs[1]].numpy()))
                if axes != [1, 2]:
                    raise ValueError(f"{node['name']}: Mean over axes {axes} (only H, W are supported)")
                out = get(inputs[0]).mean((2, 3))
            elif op == "Softmax":
                out = get(inputs[0]).softmax(-1)
            elif op == "BiasAdd":
                x, bias = get(inputs[0]), get(inputs[1])
                out = x + (bias.view(1, -1, 1, 1) if x.dim() == 4 else bias)
            elif op == "Mul":
                out = get(inputs[0]) * get(inputs[1])
            elif op == "ConcatV2":  # NHWC axis 3 (or -1) is NCHW's channel axis here
                axis = int(self.consts[inputs[-1]].item())
                if axis not in (3, -1):
                    raise ValueError(f"{node['name']}: ConcatV2 over axis {axis} (only channels are supported)")
                out = torch.cat([get(i) for i in inputs[:-1]], 1)
            elif op == "Reshape":  # flattening pooled maps (B, C, 1, 1) and the (B, C) <-> (B, 1, 1, C) of BN
                x = get(inputs[0])
                out = x.flatten(1) if x.dim() == 4 and x.shape[2:].numel() == 1 else x
            elif op == "MatMul":
                out = get(inputs[0]) @ get(inputs[1])
            elif op == "FusedBatchNorm":  # inference: (x - mean) / sqrt(var + eps) * gamma + beta
                x, gamma, beta, mean, var = (get(i) for i in inputs[:5])
                eps = float(node.get("attr", {}).get("epsilon", {}).get("f", 1e-3))
                out = (x - mean) / torch.sqrt(var + eps) * gamma + beta
            elif op == "Square":
                out = get(inputs[0]).square()
            elif op == "Sum":
                axes = [int(a) for a in np.atleast_1d(self.consts[inputs[1]].numpy())]
                if axes not in ([1], [-1]):
                    raise ValueError(f"{node['name']}: Sum over axes {axes} (only the feature axis is supported)")
                keep = bool(node.get("attr", {}).get("keep_dims", {}).get("b", False))
                out = get(inputs[0]).sum(1, keepdim=keep)
            elif op == "Maximum":
                out = torch.maximum(get(inputs[0]), get(inputs[1]))
            elif op == "Rsqrt":
                out = get(inputs[0]).rsqrt()
            else:  # Identity
                out = get(inputs[0])
            values[node["name"]] = out
        return values[self.output]
