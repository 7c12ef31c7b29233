"""Reference rows for the vision-language methods: CLIP zero-shot and a linear probe on frozen CLIP."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_zoo.models.base import FERTask
from fer_zoo.models.components.clip import CLIPEncoder
from fer_zoo.models.components.text import CLIPTextEncoder, class_prompts

ZERO_SHOT_TEMPLATES = (
    "a photo of a person making {article} {name} facial expression.",
    "a photo of a face showing {name}.",
    "a close-up photo of a face with {article} {name} expression.",
)


class CLIPZeroShot(FERTask):
    """Frozen CLIP, hand-written prompts, no training.

    Class text features are the mean of the L2-normalised features of ``templates`` (prompt
    ensembling), computed once and cached; ``logits = logit_scale * cos(image, text)``.
    ``fer-zoo fit`` runs no optimisation step: it only validates, so a benchmark can treat it
    like every other model. Without ``clip_weights`` CLIP is random and this row is at chance
    level by construction.
    """

    def __init__(
        self,
        clip_arch: str = "ViT-B-16",
        clip_weights: str | None = None,
        templates: list[str] | None = None,
        logit_scale: float = 100.0,
        **kwargs: Any,
    ) -> None:
        """Build the model.

        Args:
            clip_arch: open_clip architecture.
            clip_weights: CLIP weight spec (None: random init).
            templates: prompt templates with ``{name}`` and ``{article}`` (default: three hand prompts).
            logit_scale: cosine-logit scale.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(**kwargs)
        self.clip = CLIPEncoder(clip_arch, clip_weights, freeze="all")
        encoder = CLIPTextEncoder(self.clip)
        templates = list(templates or ZERO_SHOT_TEMPLATES)
        per_template = torch.stack([encoder(class_prompts(t, self.class_names)) for t in templates])
        self.register_buffer("class_text", F.normalize(per_template.mean(0), dim=-1))

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, C)``."""
        image = F.normalize(self.clip.encode_image(images), dim=-1)
        return self.hparams.logit_scale * image @ self.class_text.T

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Nothing to train (no loss, so Lightning skips the step)."""

    def configure_optimizers(self) -> None:
        """No optimiser: every parameter is frozen."""


class CLIPLinearProbe(FERTask):
    """A linear classifier on L2-normalised frozen CLIP image features.

    ``init_from_text`` starts the classifier from the zero-shot text features (scaled by
    ``logit_scale``) instead of a random initialisation.
    """

    def __init__(
        self,
        clip_arch: str = "ViT-B-16",
        clip_weights: str | None = None,
        init_from_text: bool = False,
        logit_scale: float = 100.0,
        **kwargs: Any,
    ) -> None:
        """Build the model.

        Args:
            clip_arch: open_clip architecture.
            clip_weights: CLIP weight spec (None: random init).
            init_from_text: initialise the classifier with zero-shot text features.
            logit_scale: scale applied to the text initialisation.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(**kwargs)
        self.clip = CLIPEncoder(clip_arch, clip_weights, freeze="all")
        self.head = nn.Linear(self.clip.embed_dim, self.num_classes)
        if init_from_text:
            text = CLIPTextEncoder(self.clip)(class_prompts(ZERO_SHOT_TEMPLATES[0], self.class_names))
            with torch.no_grad():
                self.head.weight.copy_(logit_scale * text)
                self.head.bias.zero_()

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, C)``."""
        with torch.no_grad():
            features = F.normalize(self.clip.encode_image(images), dim=-1)
        return self.head(features)

    def inference_modules(self) -> list[nn.Module]:
        """Frozen CLIP and the head."""
        return [self.clip, self.head]
