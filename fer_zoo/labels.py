"""One canonical expression vocabulary and per-dataset label orders.

Every dataset keeps its own official class order (so its label ids match published
code), and every order is mapped onto :data:`CANONICAL` by name. A model trained on one
dataset can then be evaluated on another's shared classes with :func:`index_map`.
"""

from __future__ import annotations

import re

import numpy as np

#: The canonical vocabulary (FERPlus order; the superset of every dataset here).
CANONICAL: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)

#: Official class orders. Index i of a dataset's label id is ``CLASSES[name][i]``.
CLASSES: dict[str, tuple[str, ...]] = {
    # microsoft/FERPlus: the first 8 vote columns of fer2013new.csv.
    "ferplus": CANONICAL,
    # RAF-DB basic: label ids 1..7 are stored, loaders use id - 1.
    "rafdb": ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"),
    # AffectNet expression ids 0..7 (8 None, 9 Uncertain, 10 Non-Face are dropped).
    "affectnet8": ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "contempt"),
    "affectnet7": ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger"),
    # The synthetic set is written in the RAF-DB layout, so it shares RAF-DB's order.
    "synthetic": ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"),
}


#: Folder or column names people use for the canonical classes (lower case, ``-``/``_``/space-free).
SYNONYMS: dict[str, str] = {
    **{name: name for name in CANONICAL},
    "neutrality": "neutral",
    "calm": "neutral",
    "happy": "happiness",
    "happ": "happiness",
    "joy": "happiness",
    "surprised": "surprise",
    "surprize": "surprise",
    "sad": "sadness",
    "angry": "anger",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "contemptuous": "contempt",
}


def canonical_name(name: str) -> str | None:
    """The canonical class a (folder) name stands for, or None.

    Case, digits used as sort prefixes (``0_angry``, ``03-happy``) and ``-``/``_``/spaces are
    ignored, so ``Happy``, ``happiness`` and ``1_happy`` all give ``happiness``.
    """
    key = re.sub(r"^[0-9]+[-_ ]*", "", name.strip().lower())
    return SYNONYMS.get(re.sub(r"[-_ ]", "", key))


def class_names(dataset: str) -> tuple[str, ...]:
    """Return the official class order of ``dataset``.

    Raises:
        KeyError: naming the known datasets when ``dataset`` is unknown.
    """
    try:
        return CLASSES[dataset]
    except KeyError:
        raise KeyError(f"unknown dataset {dataset!r}; known: {sorted(CLASSES)}") from None


def index_map(source: tuple[str, ...] | list[str], target: tuple[str, ...] | list[str]) -> np.ndarray:
    """Map label ids of ``source`` classes onto ``target`` classes by name.

    Args:
        source: class names in the order of the source label ids.
        target: class names in the order of the target label ids.

    Returns:
        An int64 array ``m`` with ``m[i]`` the target id of source class ``i``, or -1 when
        the target has no such class.
    """
    unknown = [n for n in list(source) + list(target) if n not in CANONICAL]
    if unknown:
        raise ValueError(f"class names {unknown} are not in the canonical vocabulary {CANONICAL}")
    position = {name: i for i, name in enumerate(target)}
    return np.array([position.get(name, -1) for name in source], dtype=np.int64)


def remap_logits(logits, source: tuple[str, ...] | list[str], target: tuple[str, ...] | list[str]):
    """Select and reorder a model's logits so that they follow ``target``'s shared classes.

    Args:
        logits: tensor ``(N, len(source))``.
        source: the classes the model was trained on.
        target: the classes of the evaluation dataset.

    Returns:
        ``(logits, keep)``: logits ``(N, K)`` over the K shared classes in target order, and
        the target ids ``keep`` they correspond to; samples whose target class is not in
        ``keep`` cannot be scored and should be excluded.
    """
    src_of_target = index_map(target, source)
    keep = np.flatnonzero(src_of_target >= 0)
    return logits[:, src_of_target[keep]], keep
