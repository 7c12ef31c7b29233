"""One CLIP wrapper over open_clip, shared by E2N, MPA-FER, LaCoVL-FER and the CLIP baselines.

:class:`CLIPEncoder` builds an open_clip architecture with weights from the project's resolver
(a tag or local file, ``local-dir:``, or none for random init), freezes the chosen towers,
re-normalises the data module's ImageNet-normalised images to CLIP's statistics and size,
and exposes the pieces the methods need: pooled image features, CLS and patch tokens with
optional deep visual prompts (VPT-deep), text features from prompts or from token embeddings
(CoOp). Two tiny architectures are registered for tests and CPU benchmarks:
``FERZoo-Tiny`` (48 px) and ``FERZoo-Small`` (64 px).
"""

from __future__ import annotations

import os
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer, text_global_pool
from torch import Tensor, nn

from fer_zoo.transforms.augment import IMAGENET_MEAN, IMAGENET_STD
from fer_zoo.weights import WeightsNotFoundError, offline, resolve

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FREEZE = ("all", "image", "text", "none")
_CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "clip"


def clip_weights_source(arch: str, spec: str | None, option: str = "model.clip_weights") -> str | None:
    """What ``open_clip.create_model(arch, pretrained=...)`` gets for a weight spec.

    * an open_clip pretrained tag of ``arch`` (``openai``, ``laion2b_s34b_b88k``, ...): the tag itself, so
      open_clip's own download and per-tag settings (QuickGELU for ``openai``) apply;
    * ``hf-hub:org/name``: the weight file of that Hugging Face repository (open_clip's file names), for an
      architecture given by ``clip_arch``;
    * anything else: :func:`fer_zoo.weights.resolve` (a local file, ``local-dir:``, a registered tag), or None.

    Offline (``HF_HUB_OFFLINE`` / ``FER_ZOO_OFFLINE``) a tag or hub id whose file is not in the local cache is a
    one-line :class:`WeightsNotFoundError` naming the tag, the cache folder and how to pass a local file.
    """
    if spec is None or str(spec).strip().lower() in ("", "none"):
        return None
    text = str(spec)
    if text.startswith("hf-hub:"):
        from open_clip.pretrained import download_pretrained_from_hf

        repo = text[len("hf-hub:") :]
        if offline() and _hub_file(repo) is None:
            raise _not_cached(option, text, f"the Hugging Face cache ({_hub_cache()}) has no weights of {repo}")
        return download_pretrained_from_hf(repo)
    if text in open_clip.list_pretrained_tags_by_model(arch):
        cfg = open_clip.get_pretrained_cfg(arch, text)
        if offline():
            repo, filename = os.path.split(cfg.get("hf_hub", ""))  # open_clip's own 'org/name/[file]' split
            url_file = Path(open_clip_cache()) / Path(cfg.get("url", "")).name if cfg.get("url") else None
            if not ((repo and _hub_file(repo, filename or None)) or (url_file and url_file.is_file())):
                where = f"the Hugging Face cache ({_hub_cache()})" + (f" or {url_file}" if url_file else "")
                raise _not_cached(option, text, f"open_clip's {arch} '{text}' weights are not in {where}")
        return text
    path = resolve(text, option)
    return str(path) if path else None


def open_clip_cache() -> str:
    """The folder open_clip downloads URL weights into (``~/.cache/clip``)."""
    return str(Path("~/.cache/clip").expanduser())


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _hub_file(repo: str, filename: str | None = None) -> str | None:
    """A cached weight file of Hugging Face repository ``repo`` (open_clip's names, safetensors first), or None."""
    from huggingface_hub import try_to_load_from_cache

    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    for name in names:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return found
    return None


def _not_cached(option: str, spec: str, what: str) -> WeightsNotFoundError:
    return WeightsNotFoundError(
        f"{option}={spec}: offline, and {what}. Go online once (open_clip downloads it), or pass a local file "
        f"with --{option} /path/to/weights.safetensors"
    )


def register_configs() -> None:
    """Make the project's tiny CLIP architectures known to open_clip (idempotent)."""
    if "FERZoo-Tiny" not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR)


class CLIPEncoder(nn.Module):
    """An open_clip model with frozen towers and the accessors the FER methods need.

    Images arrive normalised with ImageNet statistics at the data module's size. They are
    mapped back to [0, 1], normalised with CLIP's statistics and resized to the
    architecture's input size.
    """

    def __init__(
        self,
        arch: str = "ViT-B-16",
        weights: str | None = None,
        freeze: str = "all",
        with_image: bool = True,
        option: str = "model.clip_weights",
    ) -> None:
        """Build the model.

        Args:
            arch: an open_clip architecture name (``open_clip.list_models()``), e.g. ``ViT-B-16``,
                ``ViT-S-32-alt``, ``FERZoo-Tiny``.
            weights: an open_clip pretrained tag of ``arch`` (``openai``, ``laion2b_s34b_b88k``; open_clip
                downloads it when online), ``hf-hub:org/name``, or a spec for :func:`fer_zoo.weights.resolve`
                (a file such as an open_clip ``.safetensors``/``.pt``, ``local-dir:``); None: random init.
                See :func:`clip_weights_source`.
            freeze: which towers are frozen: ``all``, ``image``, ``text`` or ``none``.
            with_image: build the image tower (False for text-only use).
            option: the config option named in errors.
        """
        super().__init__()
        register_configs()
        if arch not in open_clip.list_models():
            raise ValueError(f"{option.replace('weights', 'arch')}={arch!r} is not an open_clip architecture")
        if freeze not in FREEZE:
            raise ValueError(f"freeze must be one of {FREEZE}, got {freeze!r}")
        source = clip_weights_source(arch, weights, option)
        self.model = open_clip.create_model(arch, pretrained=source)
        if not hasattr(self.model, "token_embedding"):
            raise ValueError(f"{arch}: only open_clip CLIP models with a built-in text transformer are supported")
        if not with_image:
            self.model.visual = nn.Identity()
        self.arch, self.weights, self.freeze = arch, weights, freeze
        # Frozen towers loaded from a spec are reloaded from it, not stored in checkpoints (FERTask).
        self.reloadable_from_spec = source is not None
        self.tokenizer = open_clip.get_tokenizer(arch)
        self.context_length = int(self.model.context_length)
        projection = self.model.text_projection
        self.embed_dim = int(projection.shape[1] if isinstance(projection, nn.Parameter) else projection.out_features)
        self.text_width = int(self.model.token_embedding.embedding_dim)
        size = getattr(self.model.visual, "image_size", (224, 224))
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        shift = torch.tensor(IMAGENET_MEAN) - torch.tensor(CLIP_MEAN)
        self.register_buffer("_in_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_shift", shift.view(1, 3, 1, 1), persistent=False)
        for name, param in self.model.named_parameters():
            is_image = name.startswith("visual.")
            if freeze == "all" or (freeze == "image" and is_image) or (freeze == "text" and not is_image):
                param.requires_grad_(False)
        # Frozen towers are in eval mode from the start: Lightning's fit does not call .train() on the model.
        self.train()

    def train(self, mode: bool = True) -> CLIPEncoder:
        """Set the mode, keeping frozen towers in eval mode (dropout off, norm statistics fixed)."""
        super().train(mode)
        if self.freeze == "all":
            self.model.eval()
            return self
        for name, child in self.model.named_children():
            if {"image": name == "visual", "text": name != "visual", "none": False}[self.freeze]:
                child.eval()
        return self

    # --- image side -------------------------------------------------------------------
    def preprocess(self, images: Tensor) -> Tensor:
        """ImageNet-normalised images at any size to CLIP-normalised images at the model's size."""
        x = (images * self._in_std + self._shift) / self._clip_std
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False, antialias=True)
        return x

    def encode_image(self, images: Tensor) -> Tensor:
        """Pooled, projected image features ``(B, D)`` (not normalised)."""
        return self.model.encode_image(self.preprocess(images))

    def vision_transformer(self) -> VisionTransformer:
        """The image tower, checked to be a plain CLIP ViT (class-token pooling)."""
        visual = self.model.visual
        if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None or visual.pool_type != "tok":
            raise ValueError(f"{self.arch}: token-level access needs a CLIP ViT with class-token pooling")
        return visual

    @property
    def vision_width(self) -> int:
        """Token width of the image transformer."""
        return int(self.vision_transformer().transformer.width)

    @property
    def vision_layers(self) -> int:
        """Number of blocks of the image transformer."""
        return len(self.vision_transformer().transformer.resblocks)

    def image_tokens(self, images: Tensor, deep_prompts: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Projected class token ``(B, D)`` and patch tokens ``(B, P, D)``, with optional VPT-deep prompts.

        Args:
            images: ImageNet-normalised images ``(B, 3, H, W)``.
            deep_prompts: per-layer prompt tokens ``(N_p, width)``; the prompts of layer ``l`` are
                appended to the sequence entering block ``l`` and their outputs are discarded
                (replaced by the next layer's prompts), as in VPT-deep. Fewer entries than
                blocks prompt only the first layers.
        """
        visual = self.vision_transformer()
        x = visual._embeds(self.preprocess(images))
        n_tokens = x.shape[1]
        batch_first = getattr(visual.transformer, "batch_first", True)
        for depth, block in enumerate(visual.transformer.resblocks):
            if deep_prompts is not None and depth < len(deep_prompts):
                prompts = deep_prompts[depth].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
                x = torch.cat([x[:, :n_tokens], prompts], dim=1)
            x = block(x) if batch_first else block(x.transpose(0, 1)).transpose(0, 1)
        x = visual.ln_post(x[:, :n_tokens])
        if visual.proj is not None:
            x = x @ visual.proj
        return x[:, 0], x[:, 1:]

    # --- text side --------------------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> Tensor:
        """Token ids ``(N, context_length)``; raises when a prompt would be truncated."""
        too_long = [p for p in prompts if len(self.tokenizer.encode(p)) + 2 > self.context_length]
        if too_long:
            raise ValueError(
                f"prompt longer than CLIP's {self.context_length} tokens (it would be truncated): {too_long[0]!r}"
            )
        return self.tokenizer(prompts).to(self.model.token_embedding.weight.device)

    def token_embeddings(self, token_ids: Tensor) -> Tensor:
        """Input token embeddings ``(N, L, width)`` of ``token_ids``."""
        return self.model.token_embedding(token_ids)

    def encode_token_embeddings(self, embeddings: Tensor, token_ids: Tensor) -> Tensor:
        """Text features ``(N, D)`` from (possibly learned) input embeddings; ``token_ids`` locate EOT."""
        m = self.model
        x = embeddings + m.positional_embedding.to(embeddings.dtype)
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))
        x = text_global_pool(x, token_ids, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        return m.text_projection(x) if isinstance(m.text_projection, nn.Linear) else x @ m.text_projection

    def encode_text(self, prompts: list[str]) -> Tensor:
        """Text features ``(N, D)`` of ``prompts`` (not normalised)."""
        ids = self.tokenize(prompts)
        return self.encode_token_embeddings(self.token_embeddings(ids), ids)

    @property
    def logit_scale(self) -> float:
        """CLIP's learned logit scale ``exp(t)`` (100 for the released weights, 14.3 at random init)."""
        return float(self.model.logit_scale.exp())
