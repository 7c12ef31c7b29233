"""Read a TF.js graph model (``model.json`` + weight shards) into numpy, with no TensorFlow.

A TF.js graph model is a JSON file with the graph (``modelTopology.node``: name, op, inputs,
attributes) and a ``weightsManifest``: groups of weight entries (name, shape, dtype, optional
``quantization``) whose bytes lie, in entry order, in the concatenated shard files. This module
decodes those bytes (float32, int32, float16- and affine uint8/uint16-quantised) so a network
rebuilt in PyTorch can take them by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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

