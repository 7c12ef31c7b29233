"""LaCoVL-FER: landmark-guided encoder with cross-similarity learning and CLIP vision-language enhancement.

Follows ``reference/methods.md`` section 1 and the official figure ``reference/lacovl_framework.png``.
No paper text or code exists; every open point is an option whose default is the recommended
reading (section 1.3 and section 6, items 1-5).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from fer_zoo.models.base import FERTask
from fer_zoo.models.components.clip import CLIPEncoder
from fer_zoo.models.components.lacovl import (
    BGCA,
    PYRAMID_CHANNELS,
    CrossAttention,
    CrossSimilarityAttention,
    ImagePyramid,
    LandmarkNet,
    ViT,
)
from fer_zoo.models.components.prompts import load_descriptions
from fer_zoo.models.components.text import CLIPTextEncoder, article
from fer_zoo.weights import load_into

LACOVL_TEMPLATE = "a photo of a face showing {name}, {description}"
INFERENCE = ("base", "vis", "fusion")
OBJECTIVES = ("qcs", "figure")


def in_batch_positives(labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """For each sample, a random other sample of the batch with the same label (itself when alone)."""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    others = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    scores = torch.rand(others.shape, generator=generator).to(labels.device).masked_fill(~others, -1.0)
    best = scores.argmax(1)
    return torch.where(others.any(1), best, torch.arange(len(labels), device=labels.device))


class LaCoVL(FERTask):
    """LaCoVL-FER, as the official figure draws it, with methods.md's recommended readings.

    - LGAE: a trainable image pyramid (``ir50``; ``resnet18`` option) and a frozen landmark
      network (:class:`LandmarkNet`, loaded from ``landmark_weights``, e.g. the output of
      ``fer-zoo pretrain-landmarks``). Each of the three scales is embedded to ``tokens_side**2``
      tokens of width ``dim`` and fused by a BGCA block. The three scales are concatenated along
      tokens (3 x 49), and a ViT (depth 2) gives patch tokens ``X`` and a class token ``Z``.
    - CSL (QCS dual cross-similarity): per 49-token group, a cross-similarity attention block
      runs between anchor and positive. Refined and base tokens are added and passed through a
      shared cross ViT (depth 1, dropout 0.2), giving ``y_vis`` for anchor and positive.
    - VLES: a frozen CLIP image encoder gives patch tokens. These are projected to ``dim`` and
      attended by ``Z`` (8 heads, residual), giving ``Z_hat``.
    - ECP: frozen CLIP text features ``T_fix`` of ``template`` with the per-class descriptions.
      A text-bias generator (CoCoOp meta-net ``dim -> dim/16 -> d``) gives ``delta_t``, with
      ``T_hat = T_fix + alpha delta_t`` (alpha learnable, starting at 0.1), and
      ``y_sem = sem_scale * cos(proj(Z_hat), T_hat)``.
    - Loss, ``objective=qcs`` (default): QCS, on which the figure visibly builds, trains four
      visual cross-entropies, base and cross, for anchor and positive: the base logits
      ``y_base = head(Z)`` of the LGAE class token and the cross logits ``y_vis`` of CSL. With the
      figure's semantic terms: ``1/4 sum_m [CE(y_base_m) + CE(y_vis_m) + lambda CE(y_sem_m)]``.
      ``objective=figure`` is the figure's loss as drawn, ``1/4 sum_m [CE(y_vis_m) + lambda
      CE(y_sem_m)]``, with no base term.
    - Taming the semantic branch: with a random CLIP its gradient into the shared encoder was 7-41x
      the visual one at init. ``sem_detach`` stops it at ``Z`` (the semantic head still learns);
      ``sem_warmup_epochs`` ramps ``lambda`` linearly from 0. Both are off by default (the figure
      has neither).
    - Optimiser: SAM (``sam_rho``; 0 turns it off) over Adam, weight decay 1e-4, exponential decay
      0.98 per epoch (POSTER++/QCS recipe).

    Positives come from the data module (``--data.positive_pairs true``: a random training image
    of the same class, as QCS does). Without it, each anchor is paired with a random other
    same-class sample of the batch (itself when alone). Inference uses the anchor only:
    ``inference=base`` (default, as QCS tests) is ``y_base``; ``vis`` is ``y_vis`` of the self-pair
    ``X_p = X_a``; ``fusion`` returns ``log(softmax(y_vis) + fusion_weight * softmax(y_sem))``.
    ``base`` needs ``objective=qcs`` (the figure's loss never trains the base head).

    Deviations: BGCA works on the 49 embedded tokens per scale (POSTER++ attends over windows of
    the full 28/14/7 maps). Scales are embedded by a 1x1 conv and adaptive average pooling, not
    POSTER++'s stride-2 conv stacks. Nothing is pretrained unless weights are given: the landmark
    network should be pretrained (``fer-zoo pretrain-landmarks``), and CLIP is random here.
    """

    def __init__(
        self,
        pyramid: str = "ir50",
        weights: str | None = None,
        landmark_weights: str | None = None,
        landmark_input: int = 112,
        dim: int = 768,
        heads: int = 8,
        tokens_side: int = 7,
        vit_depth: int = 2,
        cross_depth: int = 1,
        cross_dropout: float = 0.2,
        clip_arch: str = "ViT-B-16",
        clip_weights: str | None = None,
        prompt_template: str = LACOVL_TEMPLATE,
        descriptions: str | None = None,
        alpha_init: float = 0.1,
        bias_per_class: bool = False,
        sem_scale: float = 100.0,
        lambda_sem: float = 1.0,
        objective: str = "qcs",
        sem_detach: bool = False,
        sem_warmup_epochs: int = 0,
        csa_qcs_details: bool = True,
        inference: str = "base",
        fusion_weight: float = 1.0,
        sam_rho: float = 0.05,
        optimizer: str = "adam",
        lr: float = 3.5e-5,
        weight_decay: float = 1e-4,
        scheduler: str = "exponential",
        lr_gamma: float = 0.98,
        **kwargs: Any,
    ) -> None:
        """Build the model.

        Args:
            pyramid: trainable image pyramid: ``ir50``, ``resnet18``, or an imported network
                (``faceres``/``mobileface`` with ``weights: faceres.vggface2`` / ``mobileface.face``, or
                ``mobilenetv2``/``efficientnet_lite0``/``facenet`` with their tags; a deviation from the paper's
                MS-Celeb IR-50).
            weights: its weight spec (the paper: MS-Celeb-1M IR-50; None: random init).
            landmark_weights: weight spec of the frozen :class:`LandmarkNet`.
            landmark_input: input side of the landmark network (MobileFaceNet: 112).
            dim: token width.
            heads: attention heads.
            tokens_side: tokens per scale are ``tokens_side ** 2``.
            vit_depth: depth of the LGAE ViT.
            cross_depth: depth of the CSL cross ViT.
            cross_dropout: its dropout.
            clip_arch: frozen CLIP architecture (VLES and ECP).
            clip_weights: CLIP weight spec (None: random init).
            prompt_template: ECP prompt with ``{name}``, ``{article}`` and ``{description}``.
            descriptions: YAML of per-class descriptions (None: the packaged one).
            alpha_init: initial alpha of ``T_fix + alpha delta_t``.
            bias_per_class: the text-bias generator outputs one bias per class (else one, broadcast).
            sem_scale: scale of the semantic cosine logits (1 / tau).
            lambda_sem: weight of the semantic CE terms.
            objective: ``qcs`` (base and cross CEs) or ``figure`` (cross CEs only).
            sem_detach: keep the semantic loss from reaching the LGAE encoder.
            sem_warmup_epochs: ramp ``lambda_sem`` linearly from 0 over this many epochs.
            csa_qcs_details: batch-wide min/max and one shared MLP in the cross-similarity blocks,
                as the released QCS code (False: per-sample, separate MLPs).
            inference: ``base``, ``vis`` or ``fusion``.
            fusion_weight: weight of ``softmax(y_sem)`` in the fusion.
            sam_rho: SAM neighbourhood size (0: plain optimiser steps).
            optimizer: see :class:`FERTask` (paper recipe: Adam).
            lr: learning rate (POSTER++ RAF-DB: 3.5e-5, with pretrained backbones).
            weight_decay: paper recipe: 1e-4.
            scheduler: paper recipe: exponential, 0.98 per epoch.
            lr_gamma: per-epoch decay.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(
            optimizer=optimizer, lr=lr, weight_decay=weight_decay, scheduler=scheduler, lr_gamma=lr_gamma, **kwargs
        )
        if inference not in INFERENCE:
            raise ValueError(f"model.inference must be one of {INFERENCE}, got {inference!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"model.objective must be one of {OBJECTIVES}, got {objective!r}")
        if inference == "base" and objective != "qcs":
            raise ValueError("model.inference=base needs model.objective=qcs (the figure's loss never trains it)")
        self.automatic_optimization = sam_rho <= 0
        self.pyramid = ImagePyramid(pyramid, weights)
        self.landmark_net = LandmarkNet(landmark_input)
        left_at_init = load_into(self.landmark_net, landmark_weights, option="model.landmark_weights")
        # Only a fully loaded network can be rebuilt from its spec; otherwise checkpoints keep it.
        self.landmark_net.reloadable_from_spec = landmark_weights is not None and not left_at_init
        if landmark_weights is None:
            # Frozen random features carry no landmark information; say so rather than train silently.
            rank_zero_warn(
                "LaCoVL: model.landmark_weights is not set, so the frozen landmark network is random. "
                "Pretrain one with `fer-zoo pretrain-landmarks` and pass its landmark_net.pt."
            )
        self.landmark_net.requires_grad_(False).eval()
        grid = (tokens_side, tokens_side)
        self.embed_image = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1), nn.AdaptiveAvgPool2d(grid)) for c in self.pyramid.channels
        )
        self.embed_landmark = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1), nn.AdaptiveAvgPool2d(grid)) for c in PYRAMID_CHANNELS
        )
        self.bgca = nn.ModuleList(BGCA(dim, heads) for _ in PYRAMID_CHANNELS)
        n_tokens = len(PYRAMID_CHANNELS) * tokens_side**2
        self.vit = ViT(dim, n_tokens, vit_depth, heads)
        self.base_head = nn.Linear(dim, self.num_classes)
        self.csa = nn.ModuleList(CrossSimilarityAttention(dim, csa_qcs_details) for _ in PYRAMID_CHANNELS)
        self.cross_vit = ViT(dim, n_tokens, cross_depth, heads, cross_dropout)
        self.vis_head = nn.Linear(dim, self.num_classes)
        # Vision-language enhancement and expression-conditioned prompting.
        self.clip = CLIPEncoder(clip_arch, clip_weights, freeze="all")
        text_dim = self.clip.embed_dim
        self.teacher_proj = nn.Linear(text_dim, dim)
        self.vles_attn = CrossAttention(dim, heads)
        texts = load_descriptions(descriptions, self.class_names)
        prompts = [
            prompt_template.format(name=n, article=article(n), description=d) for n, d in zip(self.class_names, texts)
        ]
        self.register_buffer("text_fixed", CLIPTextEncoder(self.clip)(prompts))
        self.prompts = prompts
        out = text_dim * (self.num_classes if bias_per_class else 1)
        self.text_bias = nn.Sequential(nn.Linear(dim, max(dim // 16, 1)), nn.ReLU(), nn.Linear(max(dim // 16, 1), out))
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))
        self.sem_proj = nn.Linear(dim, text_dim)

    def train(self, mode: bool = True) -> LaCoVL:
        """Keep the frozen landmark network in eval mode (its BatchNorm statistics stay fixed)."""
        super().train(mode)
        self.landmark_net.eval()
        return self

    # --- the four parts -----------------------------------------------------------------
    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """LGAE: patch tokens ``X`` ``(B, 3 * 49, dim)`` and class token ``Z`` ``(B, dim)``."""
        image_maps = self.pyramid(images)
        with torch.no_grad():
            landmark_maps = self.landmark_net.pyramid(images)
        tokens = []
        for image_map, landmark_map, embed_i, embed_l, fuse in zip(
            image_maps, landmark_maps, self.embed_image, self.embed_landmark, self.bgca
        ):
            x = embed_i(image_map).flatten(2).transpose(1, 2)
            lm = embed_l(landmark_map).flatten(2).transpose(1, 2)
            tokens.append(fuse(x, lm))
        cls, patches = self.vit(torch.cat(tokens, dim=1))
        return patches, cls

    def cross(self, anchor: Tensor, positive: Tensor) -> tuple[Tensor, Tensor]:
        """CSL: ``y_vis`` of anchor and positive from their patch tokens."""
        groups = len(self.csa)
        refined_a, refined_p = [], []
        for block, a, p in zip(self.csa, anchor.chunk(groups, dim=1), positive.chunk(groups, dim=1)):
            ra, rp = block(a, p)
            refined_a.append(ra)
            refined_p.append(rp)
        logits_a = self.vis_head(self.cross_vit(anchor + torch.cat(refined_a, dim=1))[0])
        logits_p = self.vis_head(self.cross_vit(positive + torch.cat(refined_p, dim=1))[0])
        return logits_a, logits_p

    def semantic(self, images: Tensor, cls: Tensor) -> Tensor:
        """VLES + ECP: ``y_sem`` ``(B, C)``."""
        with torch.no_grad():
            _, teacher = self.clip.image_tokens(images)
        keys = self.teacher_proj(teacher)
        enhanced = cls + self.vles_attn(cls.unsqueeze(1), keys)[:, 0]
        bias = self.text_bias(enhanced).view(len(cls), -1, self.text_fixed.shape[1])  # (B, 1 or C, d)
        text = self.text_fixed.unsqueeze(0) + self.alpha * bias
        visual = self.sem_proj(enhanced).unsqueeze(1)
        return self.hparams.sem_scale * F.cosine_similarity(visual, text, dim=-1)

    def forward(self, images: Tensor) -> Tensor:
        """Anchor-only inference: ``y_base``, ``y_vis`` of the self-pair, or the fusion with ``y_sem``."""
        patches, cls = self.encode(images)
        if self.hparams.inference == "base":
            return self.base_head(cls)
        logits = self.cross(patches, patches)[0]
        if self.hparams.inference == "vis":
            return logits
        fused = logits.softmax(1) + self.hparams.fusion_weight * self.semantic(images, cls).softmax(1)
        return fused.clamp_min(1e-12).log()

    # --- training ---------------------------------------------------------------------
    def semantic_weight(self) -> float:
        """``lambda_sem``, ramped linearly over the first ``sem_warmup_epochs`` epochs."""
        return self.hparams.lambda_sem * self.warmup_factor(self.hparams.get("sem_warmup_epochs", 0))

    def training_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``1/4 sum_m [CE(y_base_m) + CE(y_vis_m) + lambda CE(y_sem_m)]`` over anchor and positive.

        Each term is :meth:`FERTask.classification_loss`: a sample's soft target when the data gives
        one (the positive's own), else its hard label.

        The base terms only with ``objective=qcs``. The returned logits are those of the
        inference path (``y_base`` or ``y_vis`` of the anchor).
        """
        hp = self.hparams
        images, labels = batch["image"], batch["label"]
        anchor = {k: batch[k] for k in ("label", "target") if k in batch}
        positive = {"label": labels}  # a positive shares the anchor's (hard) class
        if "positive_image" in batch:
            positives = batch["positive_image"]
            if "positive_target" in batch:
                positive["target"] = batch["positive_target"]
        else:
            if "in_batch_positive" not in batch:  # fixed once per batch (SAM runs the loss twice)
                batch["in_batch_positive"] = in_batch_positives(labels)
            positives = images[batch["in_batch_positive"]]
            if "target" in batch:
                positive["target"] = batch["target"][batch["in_batch_positive"]]
        patches_a, cls_a = self.encode(images)
        patches_p, cls_p = self.encode(positives)
        vis_a, vis_p = self.cross(patches_a, patches_p)
        sem_cls_a, sem_cls_p = (cls_a.detach(), cls_p.detach()) if hp.get("sem_detach") else (cls_a, cls_p)
        logits = {"vis_a": vis_a, "vis_p": vis_p}
        logits["sem_a"], logits["sem_p"] = self.semantic(images, sem_cls_a), self.semantic(positives, sem_cls_p)
        if hp.get("objective", "figure") == "qcs":
            logits["base_a"], logits["base_p"] = self.base_head(cls_a), self.base_head(cls_p)
        # soft targets (e.g. FERPlus label_mode: crossentropy) reach every term, anchor and positive alike
        ce = {name: self.classification_loss(value, anchor if name.endswith("_a") else positive)
              for name, value in logits.items()}
        visual = ce["vis_a"] + ce["vis_p"] + ce.get("base_a", 0.0) + ce.get("base_p", 0.0)
        lam = self.semantic_weight()
        loss = 0.25 * (visual + lam * (ce["sem_a"] + ce["sem_p"]))
        extra = {f"ce_{k}": v.detach() for k, v in ce.items()}
        if hp.get("sem_warmup_epochs", 0) > 0:
            extra["lambda_sem"] = torch.tensor(lam)
        shown = logits["base_a"] if hp.inference == "base" else vis_a
        return loss, shown, extra

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Automatic optimisation, or a manual SAM step (ascend to the worst nearby weights, descend there)."""
        if self.automatic_optimization:
            return super().training_step(batch, batch_idx)
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers()
        loss, logits, extra = self.training_loss(batch)
        self.check_finite(loss, extra)
        optimizer.zero_grad()
        self.manual_backward(loss)
        params = [p for p in self.parameters() if p.requires_grad and p.grad is not None]
        with torch.no_grad():
            norm = torch.norm(torch.stack([p.grad.norm() for p in params])) if params else torch.tensor(0.0)
            steps = [self.hparams.sam_rho * p.grad / (norm + 1e-12) for p in params]
            for p, e in zip(params, steps):
                p.add_(e)
        optimizer.zero_grad()
        self.manual_backward(self.training_loss(batch)[0])
        with torch.no_grad():
            for p, e in zip(params, steps):
                p.sub_(e)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        self.log_training(batch, loss.detach(), logits, extra)
        return loss.detach()

    def inference_modules(self) -> list[nn.Module]:
        """Everything used by ``inference=vis`` (CLIP and the semantic head only for ``fusion``)."""
        modules = [self.pyramid, self.landmark_net, self.embed_image, self.embed_landmark, self.bgca, self.vit]
        if self.hparams.inference == "base":
            return [*modules, self.base_head]
        modules += [self.csa, self.cross_vit, self.vis_head]
        if self.hparams.inference == "fusion":
            modules += [self.clip, self.teacher_proj, self.vles_attn, self.text_bias, self.sem_proj]
        return modules
