"""E2N: knowledge-enhanced FER with emotional-to-neutral transformation (Li et al., TMM 2025).

Follows ``reference/methods.md`` section 2 (official code ``hangyu94/KE2NT``) and its
recommended readings (section 6, items 6-10).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_zoo.models.base import FERTask
from fer_zoo.models.components.backbones import build_backbone
from fer_zoo.models.components.text import TEXT_SOURCES, build_text_encoder, class_prompts

E2N_HEADS = ("released", "linear")
E2N_TEMPLATE = "a photo of a person making {article} {name} facial expression."


def _non_neutral(labels: Tensor, neutral_idx: int) -> Tensor:
    return labels != neutral_idx


def transformation_loss(v: Tensor, n: Tensor, text: Tensor, labels: Tensor, neutral_idx: int) -> Tensor:
    """``L_t = mean_i [1 - cos(v_i - n_i, t_{y_i} - t_neutral)]`` over non-neutral samples.

    Args:
        v: expression features ``(B, D)`` (unnormalised, as in the code).
        n: their neutral transformations ``F_n(v)`` ``(B, D)``.
        text: class text features ``(C, D)``.
        labels: hard labels ``(B,)``.
        neutral_idx: index of the neutral class.

    Returns:
        The loss (0 with a gradient path when the batch has only neutral samples).
    """
    keep = _non_neutral(labels, neutral_idx)
    if not keep.any():
        return (v.sum() + n.sum()) * 0.0
    delta_v = v[keep] - n[keep]
    delta_t = text[labels[keep]] - text[neutral_idx]
    return (1.0 - F.cosine_similarity(delta_v, delta_t, dim=-1)).mean()


def self_contrast_loss(
    v: Tensor, n: Tensor, text: Tensor, labels: Tensor, neutral_idx: int, all_pairs: bool = False
) -> Tensor:
    """Self-contrast ``L_c``: the class text (anchor) nearer the expression feature than its neutral version.

    Per-sample (the paper's description, default): ``mean_i [cos(t_{y_i}, n_i) - cos(t_{y_i}, v_i)] + 2``.
    All pairs (the released code's matrix products): ``mean_{i,j} [cos(t_{y_i}, n_j) - cos(t_{y_i}, v_j)] + 2``.
    Non-neutral samples only; all vectors are L2-normalised.
    """
    keep = _non_neutral(labels, neutral_idx)
    if not keep.any():
        return (v.sum() + n.sum()) * 0.0
    anchor = F.normalize(text[labels[keep]], dim=-1)
    positive = F.normalize(v[keep], dim=-1)
    negative = F.normalize(n[keep], dim=-1)
    if all_pairs:
        return (anchor @ negative.T - anchor @ positive.T).mean() + 2.0
    return ((anchor * negative).sum(-1) - (anchor * positive).sum(-1)).mean() + 2.0


class E2N(FERTask):
    """E2N: a trainable visual encoder classified by cosine similarity to frozen class text features.

    ``v = head(backbone(x))`` lives in the text space. ``logits = scale * cos(v, t_c)``. The
    transformation network ``F_n`` (MLP ``D -> 128 -> ReLU -> D``) maps ``v`` to its neutral
    version ``n``. Losses: ``lambda_s L_s + lambda_t L_t + lambda_c L_c``, where ``L_s`` is
    cross-entropy on the logits, ``L_t = 1 - cos(v - n, t_y - t_neutral)`` and ``L_c`` is the
    self-contrast. ``L_t`` and ``L_c`` use non-neutral samples only. Inference costs only the
    backbone and head: the class text features are a buffer saved in the checkpoint, and no
    text encoder is kept.

    Deviations from the paper, all options:

    - ``text_source``: ``clip`` (the paper's frozen CLIP ViT-B/16 text tower; random unless
      ``clip_weights`` is given) or ``minilm`` (a pretrained sentence encoder that works offline
      here; 384-d text space).
    - ``backbone``: ``resnet18`` by default (the paper's ResNet-18 variant, from random init).
      ``swin_t`` is torchvision's Swin-T, not the released face-recognition Swin-T (patch 2, 112 px,
      ``start_0.pt``), which cannot be had here. ``weights`` loads any local backbone file.
    - ``logit_scale`` / ``learn_logit_scale``: the released code fixes the scale at 100 (CLIP's
      trained value) on a face-pretrained backbone. From random init a fixed 100 underfits; a
      learned scale (CLIP's init 14.3) is the option for that case (see the README's E2N notes).
    - ``lc_all_pairs``: False gives the paper's per-sample ``L_c``; True gives the released code's
      all-pairs form.
    - The neutral index comes from ``neutral_class`` looked up in the data module's class names
      (RAF-DB 6, FERPlus 0, AffectNet 0).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str | None = None,
        text_source: str = "clip",
        clip_arch: str = "ViT-B-16",
        clip_weights: str | None = None,
        prompt_template: str = E2N_TEMPLATE,
        neutral_class: str = "neutral",
        logit_scale: float = 100.0,
        learn_logit_scale: bool = False,
        transform_hidden: int = 128,
        head: str = "released",
        lambda_s: float = 1.0,
        lambda_t: float = 1.0,
        lambda_c: float = 1.0,
        lc_all_pairs: bool = False,
        **kwargs: Any,
    ) -> None:
        """Build the model.

        Args:
            backbone: ``resnet18``, ``resnet34``, ``resnet50`` or ``swin_t``.
            weights: backbone weight spec (None: random init).
            text_source: ``clip`` or ``minilm`` (the frozen text "knowledge").
            clip_arch: open_clip architecture of the text tower (``text_source=clip``).
            clip_weights: CLIP weight spec (None: random init; a local file when you have one).
            prompt_template: class prompt, with fields ``{article}`` and ``{name}``.
            neutral_class: the neutral class name.
            logit_scale: cosine-logit scale (the released code: CLIP's trained 100), or its start
                value when ``learn_logit_scale`` (CLIP's own init is ``1 / 0.07 = 14.29``).
            learn_logit_scale: learn the scale as CLIP does (a log-scale parameter, capped at 100).
            transform_hidden: bottleneck width of ``F_n``.
            head: ``released`` (Linear-BN-Linear-BN, the released code) or ``linear`` (one Linear with
                bias and no BatchNorm: a from-scratch option, BatchNorm on ``v`` fixes every
                coordinate's variance and so the share of ``v`` outside the text directions).
            lambda_s: weight of ``L_s``.
            lambda_t: weight of ``L_t``.
            lambda_c: weight of ``L_c``.
            lc_all_pairs: the released code's all-pairs ``L_c`` instead of the per-sample one.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(**kwargs)
        if text_source not in TEXT_SOURCES:
            raise ValueError(f"model.text_source must be one of {TEXT_SOURCES}, got {text_source!r}")
        if neutral_class not in self.class_names:
            raise ValueError(
                f"model.neutral_class={neutral_class!r} is not a class of the data ({self.class_names}); "
                "E2N needs a neutral class"
            )
        self.neutral_idx = self.class_names.index(neutral_class)
        encoder = build_text_encoder(text_source, clip_arch, clip_weights)
        self.prompts = class_prompts(prompt_template, self.class_names)
        # Frozen and computed once; saved with the checkpoint so inference needs no text encoder.
        # CLIP: the raw projected features, as the released code takes t_y - t_neutral on them;
        # MiniLM: L2-normalised, the sentence encoder's own output (its recipe ends in a Normalize).
        self.register_buffer("class_text", encoder(self.prompts, normalize=text_source != "clip"))
        dim = encoder.dim
        del encoder
        self.backbone, feat_dim = build_backbone(backbone, weights)
        if head not in E2N_HEADS:
            raise ValueError(f"model.head must be one of {E2N_HEADS}, got {head!r}")
        if head == "linear":
            self.head = nn.Sequential(nn.Linear(feat_dim, dim))
        else:  # the released head: Linear-BN-Linear-BN into the text space
            self.head = nn.Sequential(
                nn.Linear(feat_dim, feat_dim, bias=False),
                nn.BatchNorm1d(feat_dim),
                nn.Linear(feat_dim, dim, bias=False),
                nn.BatchNorm1d(dim),
            )
        self.transform = nn.Sequential(nn.Linear(dim, transform_hidden), nn.ReLU(), nn.Linear(transform_hidden, dim))
        if learn_logit_scale:
            self.log_logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))

    @property
    def scale(self) -> Tensor | float:
        """The cosine-logit scale: fixed, or ``exp`` of the learned log-scale capped at 100 (as CLIP)."""
        if self.hparams.get("learn_logit_scale"):
            return self.log_logit_scale.clamp(max=math.log(100.0)).exp()
        return self.hparams.logit_scale

    def features(self, images: Tensor) -> Tensor:
        """Expression features ``v`` ``(B, D)`` in the text space."""
        return self.head(self.backbone(images))

    def logits_from(self, v: Tensor) -> Tensor:
        """``scale * cos(v, t_c)``."""
        return self.scale * F.normalize(v, dim=-1) @ F.normalize(self.class_text, dim=-1).T

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, C)`` (backbone and head only)."""
        return self.logits_from(self.features(images))

    def training_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``lambda_s L_s + lambda_t L_t + lambda_c L_c``."""
        hp = self.hparams
        v = self.features(batch["image"])
        n = self.transform(v)
        logits = self.logits_from(v)
        labels = batch["label"]
        loss_s = self.classification_loss(logits, batch)
        loss_t = transformation_loss(v, n, self.class_text, labels, self.neutral_idx)
        loss_c = self_contrast_loss(v, n, self.class_text, labels, self.neutral_idx, hp.lc_all_pairs)
        loss = hp.lambda_s * loss_s + hp.lambda_t * loss_t + hp.lambda_c * loss_c
        extra = {"loss_s": loss_s.detach(), "loss_t": loss_t.detach(), "loss_c": loss_c.detach()}
        if hp.get("learn_logit_scale"):
            extra["logit_scale"] = self.scale.detach()
        return loss, logits, extra

    def inference_modules(self) -> list[nn.Module]:
        """Backbone and head (``F_n`` is training-only)."""
        return [self.backbone, self.head]
