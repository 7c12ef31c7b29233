"""Read a frozen TensorFlow GraphDef (``*.pb``) with no TensorFlow and no generated protobuf code.

A GraphDef is a protobuf message: ``repeated NodeDef node = 1``; a NodeDef has ``name = 1``, ``op = 2``,
``repeated input = 3`` and ``map<string, AttrValue> attr = 5``. Constants carry a ``TensorProto`` in their
``value`` attribute (``dtype = 1``, ``tensor_shape = 2``, raw ``tensor_content = 4`` or typed ``float_val = 5`` /
``int_val = 7``). This module decodes the protobuf wire format for exactly those fields and returns a
:class:`~fer_zoo.models.components.tfjs.GraphModel` whose nodes have the same dict form as a TF.js ``model.json``
(string attributes base64-encoded, lists under ``list``), so
:class:`~fer_zoo.models.components.tfjs.GraphRunner` runs both.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fer_zoo.models.components.tfjs import GraphModel

#: TensorFlow DataType enum -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each field of a message (varints as int, the rest as bytes)."""
    i, end = 0, len(buf)
    while i < end:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        if i > end:
            raise ValueError(f"truncated field {number} ({i - end} bytes missing)")
        yield number, wire, value


def _packed_ints(value: int | bytes, wire: int) -> list[int]:
    if wire == 0:
        return [_signed(value)]
    out, i = [], 0
    while i < len(value):
        item, i = _varint(value, i)
        out.append(_signed(item))
    return out


def _tensor(buf: bytes) -> np.ndarray:
    """A ``TensorProto`` as a numpy array."""
    dtype, shape, content, floats, ints = 1, [], None, [], []
    for number, wire, value in _fields(buf):
        if number == 1:
            dtype = value
        elif number == 2:  # TensorShapeProto: repeated Dim dim = 2 { int64 size = 1 }
            shape = [_signed(size) for n, _, dim in _fields(value) if n == 2
                     for m, _, size in _fields(dim) if m == 1]  # fmt: skip
        elif number == 4:
            content = bytes(value)
        elif number == 5:
            floats += list(np.frombuffer(value, "<f4")) if wire == 2 else [struct.unpack("<f", value)[0]]
        elif number == 7:
            ints += _packed_ints(value, wire)
    np_dtype = _DTYPES.get(dtype)
    if np_dtype is None:
        raise ValueError(f"unsupported tensor dtype {dtype}")
    count = int(np.prod(shape)) if shape else 1
    if content is not None:
        array = np.frombuffer(content, np.dtype(np_dtype).newbyteorder("<")).astype(np_dtype)
    else:
        array = np.asarray(floats or ints, np_dtype)
        if array.size == 1 and count > 1:  # a splatted constant: one value for every element
            array = np.full(count, array[0], np_dtype)
    if array.size != count:
        raise ValueError(f"tensor of shape {shape} holds {array.size} values")
    return array.reshape(shape)


def _attr(buf: bytes) -> dict:
    """An ``AttrValue`` in TF.js JSON form (``s`` base64, ``list`` with ``i``/``s``), or ``{"tensor": array}``."""
    out: dict = {}
    for number, wire, value in _fields(buf):
        if number == 1:
            items: dict[str, list] = {"i": [], "s": []}
            for n, w, v in _fields(value):
                if n == 2:
                    items["s"].append(base64.b64encode(bytes(v)).decode())
                elif n == 3:
                    items["i"] += _packed_ints(v, w)
            out["list"] = items
        elif number == 2:
            out["s"] = base64.b64encode(bytes(value)).decode()
        elif number == 3:
            out["i"] = _signed(value)
        elif number == 4:
            out["f"] = struct.unpack("<f", value)[0]
        elif number == 5:
            out["b"] = bool(value)
        elif number == 6:
            out["type"] = value
        elif number == 8:
            out["tensor"] = _tensor(value)
    return out


def parse_graph_def(data: bytes, source: str = "graph") -> GraphModel:
    """Decode a serialised GraphDef; constants become the model's weights (by node name).

    Raises:
        ValueError: naming ``source`` when the bytes are not a GraphDef this reader understands.
    """
    nodes, weights = [], {}
    try:
        for number, _, value in _fields(memoryview(data).tobytes()):
            if number != 1:
                continue
            node: dict = {"name": "", "op": "", "input": [], "attr": {}}
            for n, _, v in _fields(value):
                if n == 1:
                    node["name"] = bytes(v).decode()
                elif n == 2:
                    node["op"] = bytes(v).decode()
                elif n == 3:
                    node["input"].append(bytes(v).decode())
                elif n == 5:
                    entry = dict((m, w) for m, _, w in _fields(v))
                    node["attr"][bytes(entry.get(1, b"")).decode()] = _attr(entry.get(2, b""))
            if node["op"] == "Const":
                weights[node["name"]] = node["attr"].pop("value")["tensor"]
            nodes.append(node)
    except (IndexError, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{source}: not a TensorFlow GraphDef this reader understands ({error})") from None
    if not nodes:
        raise ValueError(f"{source}: no graph nodes (not a TensorFlow GraphDef?)")
    return GraphModel(Path(source), nodes, weights, {"format": "graph-def"})


def read_graph_def(path: str | Path) -> GraphModel:
    """Read a frozen GraphDef file (see :func:`parse_graph_def`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TensorFlow GraphDef not found: {path}")
    return parse_graph_def(path.read_bytes(), str(path))
