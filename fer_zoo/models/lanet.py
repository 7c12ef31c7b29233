"""LA-Net: landmark-aware FER under label noise (Wu & Cui, ICCV 2023).

Follows ``reference/methods.md`` section 4 (official code ``hw-tony/LA-Net``) and section 6, items 18-23.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_zoo.landmarks import heatmaps_torch, to_aflw19
from fer_zoo.models.base import FERTask
from fer_zoo.models.components.lanet import (
    PairScorer,
    TwoBranchResNet,
    adaptive_wing,
    expression_landmark_contrast,
    neighbour_distribution,
)


def _mlp(dim_in: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim), nn.ReLU(), nn.Linear(dim, dim))


class LANet(FERTask):
    """LA-Net: expression branch (the only inference path) plus a landmark branch that guides it.

    Losses: ``CE(z, y~) + lambda_lm mean(AWing(h_hat, h) * W) + lambda_kl KL(q || softmax(z)) + lambda_el L_el``.

    - The landmark branch regresses Gaussian heatmaps (stride 4, sigma 1.5) of the batch's
      ``landmarks`` with the adaptive Wing loss and LA-Net's weight map. Samples whose landmarks
      are a fallback (``landmark_found`` False) do not count.
    - LDE: kNN (K=8, cosine, self excluded) in expression space ``u`` and landmark space ``v``
      over the all-gathered global batch; learned pair scores; ``d = (d_u + d_v) / 2``;
      ``q = m B[i] + (1 - m) d`` with the bank ``B`` initialised to the one-hot (noisy) labels
      and updated with ``q.detach()``. ``q`` is *not* detached in the KL, as in the official
      code, so the KL trains the scorers.
    - EL: MoCo-style contrast between expression queries and landmark momentum keys, and the
      reverse direction. It uses a momentum encoder (m = 0.999), queues of ``queue_size``
      keys with pseudo-labels (``argmax q`` when ``max q >= 0.7``, else ``-(index + 1)``: only
      itself is positive), and T = 0.1.

    Deviations (options): shuffle-BN across GPUs becomes a per-device "split" shuffle
    (``key_bn_splits``: the momentum encoder sees the shuffled batch in that many chunks). The
    ambiguous pseudo-label is ``-(index + 1)``, not ``-index``, so sample 0 never collides with
    class 0. The landmarks are MediaPipe points mapped to the AFLW-19 layout (the paper uses
    HRNet AFLW-19 detections), or a dataset's own 68 points, mapped to AFLW-19 on the fly.
    """

    head_attribute = "fer_fc"

    def __init__(
        self,
        backbone: str = "resnet18",
        weights: str | None = None,
        num_landmarks: int = 19,
        knn: int = 8,
        bank_momentum: float = 0.9,
        lambda_lm: float = 1.0,
        lambda_kl: float = 1.0,
        lambda_el: float = 0.1,
        lm_warmup_epochs: float = 0.0,
        el_temperature: float = 0.1,
        key_momentum: float = 0.999,
        queue_size: int = 8192,
        pseudo_threshold: float = 0.7,
        heatmap_sigma: float = 1.5,
        heatmap_stride: int = 4,
        key_bn_splits: int = 2,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: str = "linear",
        **kwargs: Any,
    ) -> None:
        """Build the model.

        Args:
            backbone: ``resnet18`` or ``resnet50``.
            weights: ResNet weight spec (the paper: MS-Celeb-1M face recognition; None: random init).
            num_landmarks: landmark points per sample (19: AFLW layout; set ``data.landmark_layout``).
            knn: neighbours K of LDE.
            bank_momentum: ``m`` of the target bank.
            lambda_lm: heatmap loss weight.
            lambda_kl: LDE KL weight.
            lambda_el: expression-landmark contrast weight.
            lm_warmup_epochs: ramp ``lambda_lm`` linearly from 0 over this many epochs (0: off, the
                paper). An option for random init, where the heatmap loss dominates the shared stem
                before the expression branch has learned anything.
            el_temperature: EL temperature T.
            key_momentum: momentum of the key encoder.
            queue_size: keys per queue.
            pseudo_threshold: confidence for a pseudo-label.
            heatmap_sigma: Gaussian std of the heatmap targets (heatmap pixels).
            heatmap_stride: 4 (paper: 56x56 cells at 224 px) or 2, which extends the landmark
                branch's top-down path to the stride-2 stem feature so a small input keeps
                fine heatmaps (48 px: 24x24 instead of 12x12). A deviation for CPU budgets.
            key_bn_splits: chunks the shuffled batch is split into for the key encoder (1: none).
            optimizer: paper: Adam.
            lr: paper: 1e-3.
            weight_decay: paper: 0.
            scheduler: paper: linear decay to 0 over all iterations.
            **kwargs: :class:`FERTask` options.
        """
        super().__init__(optimizer=optimizer, lr=lr, weight_decay=weight_decay, scheduler=scheduler, **kwargs)
        self.net = TwoBranchResNet(backbone, weights, num_landmarks, heatmap_stride)
        du, dv = self.net.expression_dim, self.net.landmark_dim
        self.fer_fc = nn.Linear(du, self.num_classes)
        self.exp_proj, self.lm_proj = _mlp(du, dv), _mlp(dv, dv)
        self.scorer_u, self.scorer_v = PairScorer(du), PairScorer(dv)
        self.key_net = copy.deepcopy(self.net).requires_grad_(False)
        self.key_exp_proj = copy.deepcopy(self.exp_proj).requires_grad_(False)
        self.key_lm_proj = copy.deepcopy(self.lm_proj).requires_grad_(False)
        # Random unit keys with labels no sample can have: pure negatives until real keys arrive.
        self.register_buffer("queue_exp", F.normalize(torch.randn(queue_size, dv), dim=1))
        self.register_buffer("queue_lm", F.normalize(torch.randn(queue_size, dv), dim=1))
        self.register_buffer("queue_labels", -(10**9) - torch.arange(queue_size))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("bank", torch.zeros(0, self.num_classes))
        self._pending: tuple[Tensor, Tensor, Tensor] | None = None

    # --- inference --------------------------------------------------------------------
    def forward(self, images: Tensor) -> Tensor:
        """Logits from the expression branch only."""
        return self.fer_fc(self.net.expression(images))

    def inference_modules(self) -> list[nn.Module]:
        """Stem, expression branch and classifier."""
        return [self.net.stem, self.net.fer, self.fer_fc]

    # --- training ---------------------------------------------------------------------
    def _world(self) -> tuple[int, int]:
        """``(rank, world size)``; ``(0, 1)`` outside a trainer."""
        trainer = self._trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def _gather(self, tensor: Tensor, grads: bool = False) -> Tensor:
        if self._world()[1] == 1:
            return tensor
        return self.all_gather(tensor, sync_grads=grads).flatten(0, 1)

    def _rank_slice(self, batch_size: int) -> slice:
        rank = self._world()[0]
        return slice(rank * batch_size, (rank + 1) * batch_size)

    def heatmap_loss(self, predicted: Tensor, batch: dict[str, Any], image_size: int) -> Tensor:
        """Weighted adaptive Wing loss over samples with detected landmarks."""
        points = batch.get("landmarks")
        if points is None:
            raise ValueError(
                "LA-Net needs landmarks in the batch: use a dataset with its own (synthetic, AffectNet) or "
                "--data.landmarks mediapipe after `fer-zoo landmarks` (and --data.landmark_layout 19)"
            )
        if points.shape[1] == 68 and predicted.shape[1] == 19:
            points = to_aflw19(points)  # a dataset's own 68 points, mapped to the AFLW layout
        if points.shape[1] != predicted.shape[1]:
            raise ValueError(
                f"the data gives {points.shape[1]} landmarks but model.num_landmarks={predicted.shape[1]}; "
                "set --data.landmark_layout accordingly"
            )
        target, weight = heatmaps_torch(points, predicted.shape[-1], image_size, self.hparams.heatmap_sigma)
        found = batch.get("landmark_found")
        valid = torch.ones(len(points), device=points.device) if found is None else found.float()
        per_sample = (adaptive_wing(predicted, target) * weight).mean((1, 2, 3))
        return (per_sample * valid).sum() / valid.sum().clamp_min(1.0)

    @torch.no_grad()
    def _keys(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Momentum keys with a shuffled, chunked batch (per-device stand-in for shuffle-BN)."""
        order = torch.randperm(len(images), device=images.device)
        chunks = [self.key_net(c)[:2] for c in images[order].chunk(max(1, self.hparams.key_bn_splits))]
        u = torch.cat([c[0] for c in chunks])
        v = torch.cat([c[1] for c in chunks])
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        return F.normalize(self.key_exp_proj(u[inverse]), dim=1), F.normalize(self.key_lm_proj(v[inverse]), dim=1)

    def training_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """CE + heatmap + LDE KL + EL."""
        hp = self.hparams
        images, index = batch["image"], batch["index"]
        u, v, predicted = self.net(images)
        logits = self.fer_fc(u)
        loss_ce = self.classification_loss(logits, batch)
        loss_lm = self.heatmap_loss(predicted, batch, images.shape[-1])

        # LDE on the global batch; gradients flow back through the gather.
        all_u, all_v, all_logits = self._gather(u, True), self._gather(v, True), self._gather(logits, True)
        all_index = self._gather(index)
        probs = all_logits.softmax(1)
        d = 0.5 * (
            neighbour_distribution(self.scorer_u, all_u, probs, hp.knn)
            + neighbour_distribution(self.scorer_v, all_v, probs, hp.knn)
        )
        q = hp.bank_momentum * self.bank[all_index] + (1 - hp.bank_momentum) * d  # not detached (official code)
        self.bank[all_index] = q.detach()
        local = self._rank_slice(len(images))
        loss_kl = F.kl_div(logits.log_softmax(1), q[local], reduction="batchmean")

        # EL: expression queries against landmark keys and the reverse.
        confidence, guess = q.detach().max(1)
        all_pseudo = torch.where(confidence >= hp.pseudo_threshold, guess, -(all_index + 1))
        pseudo = all_pseudo[local]
        query_u = F.normalize(self.exp_proj(u), dim=1)
        query_v = F.normalize(self.lm_proj(v), dim=1)
        key_u, key_v = self._keys(images)
        key_u, key_v = self._gather(key_u), self._gather(key_v)
        loss_el = expression_landmark_contrast(
            query_u, pseudo, key_v, all_pseudo, self.queue_lm, self.queue_labels, hp.el_temperature
        ) + expression_landmark_contrast(
            query_v, pseudo, key_u, all_pseudo, self.queue_exp, self.queue_labels, hp.el_temperature
        )
        self._pending = (key_u, key_v, all_pseudo)

        lambda_lm = hp.lambda_lm * self.warmup_factor(hp.get("lm_warmup_epochs", 0.0))
        loss = loss_ce + lambda_lm * loss_lm + hp.lambda_kl * loss_kl + hp.lambda_el * loss_el
        extra = {"loss_ce": loss_ce, "loss_lm": loss_lm, "loss_kl": loss_kl, "loss_el": loss_el}
        return loss, logits, {k: t.detach() for k, t in extra.items()}

    @torch.no_grad()
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After the step: momentum update of the key encoder, then enqueue this step's keys."""
        m = self.hparams.key_momentum
        for online, key in (
            (self.net, self.key_net),
            (self.exp_proj, self.key_exp_proj),
            (self.lm_proj, self.key_lm_proj),
        ):
            for p_online, p_key in zip(online.parameters(), key.parameters()):
                p_key.mul_(m).add_(p_online.detach(), alpha=1 - m)
            for b_online, b_key in zip(online.buffers(), key.buffers()):
                b_key.copy_(b_online)
        if self._pending is None:
            return
        key_u, key_v, labels = self._pending
        self._pending = None
        size = len(self.queue_labels)
        slots = (self.queue_ptr + torch.arange(len(labels), device=labels.device)) % size
        self.queue_exp[slots], self.queue_lm[slots], self.queue_labels[slots] = key_u, key_v, labels
        self.queue_ptr.copy_((self.queue_ptr + len(labels)) % size)

    def prepare_fit(self, datamodule: Any) -> None:
        """Also initialise the target bank with the one-hot training labels (noisy ones under the noise protocol)."""
        super().prepare_fit(datamodule)
        train = datamodule.dataset("train")
        if self.bank.shape[0] != len(train):
            labels = torch.as_tensor(train.labels, dtype=torch.long, device=self.bank.device)
            self.bank = F.one_hot(labels, self.num_classes).float()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Size the bank like the checkpoint's before its state is loaded (resume)."""
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get("state_dict", {}).get("bank")
        if saved is not None:
            self.bank = torch.zeros_like(saved, device=self.bank.device)
