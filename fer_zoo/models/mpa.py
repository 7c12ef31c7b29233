"""MPA-FER: multimodal prompt alignment on a frozen CLIP (Ma et al., ICCV 2025).

Follows ``reference/methods.md`` section 3 and its recommended readings (section 6, items 11-17).
No official code exists; every hyper-parameter is an option with the recommended default.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_zoo.models.base import FERTask
from fer_zoo.models.components import prototypes as proto
from fer_zoo.models.components.clip import CLIPEncoder
from fer_zoo.models.components.prompts import (
    DeepVisualPrompts,
    TextPromptLearner,
    content_mask,
    load_descriptions,
    masked_mean,
)
from fer_zoo.models.components.text import CLIPTextEncoder, article, parameter_fingerprint

log = logging.getLogger(__name__)

HARD_TEMPLATE = "a photo of a person making a facial expression of {name}. {description}"
PA_LOSSES = ("l1", "contrastive")
VA_LOSSES = ("cosine", "l1")


def class_contrastive(soft: Tensor, hard: Tensor, temperature: float) -> Tensor:
    """``-mean_d log softmax_c(cos(soft_c, hard_d) / tau)[d]``: each hard prompt picks its own soft prompt."""
    sims = F.normalize(hard, dim=-1) @ F.normalize(soft, dim=-1).T / temperature
    return F.cross_entropy(sims, torch.arange(len(hard), device=hard.device))


def l1_distance(a: Tensor, b: Tensor) -> Tensor:
    """``mean_i |a_i - b_i|_1`` of L2-normalised rows: the L1 norm per row, averaged over rows only.

    (``F.l1_loss`` would also average over the embedding dimensions, shrinking the loss by ``D``.)
    """
    return (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).abs().sum(-1).mean()


def prompt_alignment_l1(soft: Tensor, hard: Tensor) -> Tensor:
    """``L_pa = mean_c |theta(t_c) - theta(t_c*)|_1`` of L2-normalised text features."""
    return l1_distance(soft, hard)


def global_local_logits(cls: Tensor, patches: Tensor, text: Tensor, top_k: int, scale: float) -> Tensor:
    """CGLA: ``scale * (cos(z_g, t_c) + mean of the top-k cos(z_i, t_c) over patches i)``.

    Args:
        cls: projected class tokens ``(B, D)``.
        patches: projected patch tokens ``(B, P, D)``.
        text: class text features ``(C, D)``.
        top_k: patches averaged per class (at most ``P``).
        scale: logit scale (``1 / tau``).
    """
    text = F.normalize(text, dim=-1)
    global_sim = F.normalize(cls, dim=-1) @ text.T
    local_sim = F.normalize(patches, dim=-1) @ text.T  # (B, P, C)
    local_sim = local_sim.topk(min(top_k, local_sim.shape[1]), dim=1).values.mean(1)
    return scale * (global_sim + local_sim)


def visual_alignment(features: Tensor, prototypes: Tensor, labels: Tensor, kind: str = "cosine") -> Tensor:
    """``L_v``: distance of each prompted class token to its class prototype (``1 - cos`` or L1)."""
    target = prototypes[labels]
    if kind == "l1":
        return l1_distance(features, target)
    return (1.0 - F.cosine_similarity(features, target, dim=-1)).mean()


class MPA(FERTask):
    """MPA-FER: CoOp text prompts and VPT-deep visual prompts learned on a frozen CLIP.

    Only the prompts train (about 0.08 M parameters for ViT-B/16: 12 x 8 x 768 visual and
    10 x 512 text). Logits come from cross-modal global-local alignment (CGLA) between the
    prompted image tokens and the soft-prompt text features. Losses:
    ``L = L_vt + beta * (L_ta + L_pa) + gamma * L_v``.

    - ``L_ta`` is the token-level soft-hard alignment. The non-special token embeddings of each
      prompt are mean-pooled, compared by cosine, and a class-contrastive cross-entropy with
      ``ta_temperature`` is taken.
    - ``L_pa`` is the prompt-level alignment of text-encoder outputs: L1 by default, or
      ``pa_loss=contrastive`` (the unofficial reproduction's form).
    - ``L_v`` is the distance of the prompted class token to its class prototype. The
      prototypes are the mean un-prompted frozen class tokens of the training images,
      computed once at the start of fit, cached on disk and saved in the checkpoint.

    The hard prompts are ``hard_template`` filled with the class name and a per-class
    description. The descriptions were written for this project (the paper's ChatGPT answers
    are unpublished), are stored as data in ``configs/prompts/descriptions.yaml`` and can be
    swapped with ``descriptions``. Without ``clip_weights`` CLIP is randomly initialised, so
    its features carry no pretrained knowledge. State this next to any result.
    """

    def __init__(
        self,
        clip_arch: str = "ViT-B-16",
        clip_weights: str | None = None,
        n_ctx: int = 10,
        n_visual_prompts: int = 8,
        prompt_depth: int | None = None,
        descriptions: str | None = None,
        hard_template: str = HARD_TEMPLATE,
        top_k: int = 16,
        logit_scale: float = 100.0,
        ta_temperature: float = 0.07,
        pa_loss: str = "l1",
        va_loss: str = "cosine",
        beta: float = 1.0,
        gamma: float = 1.0,
        prototype_subset: int | None = None,
        optimizer: str = "sgd",
        lr: float = 0.032,
        weight_decay: float = 5e-4,
        scheduler: str = "cosine",
        **kwargs: Any,
    ) -> None:
        """Build the model.

        Args:
            clip_arch: open_clip architecture (a ViT with class-token pooling).
            clip_weights: CLIP weight spec (None: random init).
            n_ctx: CoOp context vectors M.
            n_visual_prompts: visual prompt tokens per block N_p.
            prompt_depth: number of prompted blocks (None: all).
            descriptions: YAML file of per-class descriptions (None: the packaged one).
            hard_template: hard prompt with fields ``{name}``, ``{article}`` and ``{description}``.
            top_k: local patches per class in CGLA.
            logit_scale: ``1 / tau`` of the classification logits (CLIP's 100).
            ta_temperature: temperature of the token-level (and contrastive prompt-level) alignment.
            pa_loss: ``l1`` (default) or ``contrastive``.
            va_loss: ``cosine`` (default, ``1 - cos``) or ``l1`` distance to the prototype.
            beta: weight of ``L_t = L_ta + L_pa``.
            gamma: weight of ``L_v``.
            prototype_subset: images per class used for the prototypes (None: all).
            optimizer: see :class:`FERTask` (paper: SGD).
            lr: paper: 0.032.
            weight_decay: reproduction's assumption: 5e-4.
            scheduler: paper: cosine.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(optimizer=optimizer, lr=lr, weight_decay=weight_decay, scheduler=scheduler, **kwargs)
        if pa_loss not in PA_LOSSES:
            raise ValueError(f"model.pa_loss must be one of {PA_LOSSES}, got {pa_loss!r}")
        if va_loss not in VA_LOSSES:
            raise ValueError(f"model.va_loss must be one of {VA_LOSSES}, got {va_loss!r}")
        self.clip = CLIPEncoder(clip_arch, clip_weights, freeze="all")
        depth = self.clip.vision_layers if prompt_depth is None else prompt_depth
        if not 0 < depth <= self.clip.vision_layers:
            raise ValueError(f"model.prompt_depth must be in 1..{self.clip.vision_layers}, got {prompt_depth}")
        self.text_prompts = TextPromptLearner(self.clip, self.class_names, n_ctx)
        self.visual_prompts = DeepVisualPrompts(depth, n_visual_prompts, self.clip.vision_width)
        texts = load_descriptions(descriptions, self.class_names)
        self.hard_prompts = [
            hard_template.format(name=n, article=article(n), description=d) for n, d in zip(self.class_names, texts)
        ]
        hard_ids = self.clip.tokenize(self.hard_prompts)  # raises when a prompt exceeds 77 tokens
        with torch.no_grad():
            hard_tokens = masked_mean(self.clip.token_embeddings(hard_ids), content_mask(hard_ids))
        self.register_buffer("hard_tokens", hard_tokens)
        self.register_buffer("hard_text", CLIPTextEncoder(self.clip)(self.hard_prompts))
        self.register_buffer("prototypes", torch.zeros(self.num_classes, self.clip.embed_dim))
        self.register_buffer("prototypes_ready", torch.tensor(False))
        self._eval_text: Tensor | None = None

    # --- features ---------------------------------------------------------------------
    def text_features(self) -> tuple[Tensor, Tensor]:
        """Soft-prompt text features ``(C, D)`` and pooled soft-prompt token embeddings ``(C, width)``."""
        embeddings = self.text_prompts()
        features = self.clip.encode_token_embeddings(embeddings, self.text_prompts.token_ids)
        return features, self.text_prompts.pooled(embeddings)

    def image_tokens(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Prompted, projected class token and patch tokens."""
        return self.clip.image_tokens(images, self.visual_prompts())

    def forward(self, images: Tensor) -> Tensor:
        """CGLA logits ``(B, C)``."""
        text = self._eval_text if (not self.training and self._eval_text is not None) else self.text_features()[0]
        cls, patches = self.image_tokens(images)
        return global_local_logits(cls, patches, text, self.hparams.top_k, self.hparams.logit_scale)

    def training_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``L_vt + beta (L_ta + L_pa) + gamma L_v``."""
        hp = self.hparams
        text, soft_tokens = self.text_features()
        cls, patches = self.image_tokens(batch["image"])
        logits = global_local_logits(cls, patches, text, hp.top_k, hp.logit_scale)
        loss_vt = self.classification_loss(logits, batch)
        loss_ta = class_contrastive(soft_tokens, self.hard_tokens, hp.ta_temperature)
        if hp.pa_loss == "l1":
            loss_pa = prompt_alignment_l1(text, self.hard_text)
        else:
            loss_pa = class_contrastive(text, self.hard_text, hp.ta_temperature)
        loss_v = visual_alignment(cls, self.prototypes, batch["label"], hp.va_loss)
        loss = loss_vt + hp.beta * (loss_ta + loss_pa) + hp.gamma * loss_v
        extra = {"loss_vt": loss_vt, "loss_ta": loss_ta, "loss_pa": loss_pa, "loss_v": loss_v}
        return loss, logits, {k: v.detach() for k, v in extra.items()}

    # --- cached evaluation text and prototypes -----------------------------------------
    def _freeze_eval_text(self) -> None:
        with torch.no_grad():
            self._eval_text = self.text_features()[0]

    def _drop_eval_text(self) -> None:
        self._eval_text = None

    on_validation_epoch_start = on_test_epoch_start = on_predict_epoch_start = _freeze_eval_text
    on_train_epoch_start = _drop_eval_text

    def on_validation_epoch_end(self) -> None:
        """Compute validation metrics; drop the cached text features."""
        super().on_validation_epoch_end()
        self._drop_eval_text()

    def on_fit_start(self) -> None:
        """Log the trainable size; build the class prototypes unless the checkpoint has them."""
        trainable = self.num_parameters(trainable_only=True)
        log.info("MPA trainable parameters: %d (%.3f MB in fp32)", trainable, trainable * 4 / 2**20)
        if not bool(self.prototypes_ready):
            self.prototypes.copy_(self.compute_prototypes())
            self.prototypes_ready.fill_(True)

    def compute_prototypes(self) -> Tensor:
        """Mean un-prompted frozen class token per class over the (un-augmented) training set.

        Cached in ``$FER_ZOO_HOME/prototypes`` under a key of the image tower's weights and the
        training labels; under DDP each rank encodes a shard and the sums are all-reduced. A
        ``fast_dev_run`` uses at most 4 images per class.
        """
        dm = self.trainer.datamodule
        dataset = dm.make_dataset("train", dm.transform(False))
        labels = np.asarray(dataset.labels)
        per_class = self.hparams.prototype_subset
        if self.trainer.fast_dev_run:  # a smoke run must not encode the whole training set
            per_class = min(per_class or 4, 4)
        indices = proto.select_subset(labels, per_class)
        key = proto.prototype_key(
            parameter_fingerprint(self.clip.model.visual),
            type(dm).__name__,
            str(getattr(dm, "root", "")),
            dm.image_size,
            labels,
            indices,
        )
        cached = proto.load_cached(key)
        if self.trainer.strategy.broadcast(cached is not None):
            cached = cached if cached is not None else proto.load_cached(key)
            if cached is not None:
                return cached.to(self.device)
        rank, world = self.trainer.global_rank, self.trainer.world_size
        sums, counts = proto.class_sums(
            lambda x: self.clip.encode_image(x),
            dataset,
            indices[rank::world],
            self.num_classes,
            dm.eval_batch_size,
            0,
            self.device,
        )
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        prototypes = sums / counts.clamp_min(1).unsqueeze(1)
        if self.trainer.is_global_zero:
            proto.save_cached(key, prototypes)
        log.info("MPA prototypes from %d training images (%s per class)", len(indices), counts.long().tolist())
        return prototypes

    def inference_modules(self) -> list[nn.Module]:
        """CLIP and the prompts (everything but the buffers)."""
        return [self.clip, self.text_prompts, self.visual_prompts]
