"""``FERTask``: the LightningModule every method derives from."""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from fer_zoo.errors import OptionError
from fer_zoo.metrics import class_metrics, confusion_scores, scalar_metrics

# FERTask's on_after_batch_transfer (channels-last batches) is meant to run beside any data module's hooks.
warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("onecycle", "cosine", "linear", "exponential", "none")


class FERTask(L.LightningModule):
    """Shared training, evaluation and optimisation for FER methods.

    Subclasses build their networks in ``__init__`` and implement :meth:`forward` (images
    to logits, the inference path). Methods with extra losses override
    :meth:`training_loss`. Metrics: ``acc`` (overall, micro), ``mca`` (mean class accuracy,
    macro), ``f1_macro``, per-class accuracy and the confusion matrix, for val and test;
    metric objects sync across DDP ranks themselves. :attr:`results` holds the last
    computed evaluation (scalars, per-class accuracy, confusion matrix) per stage.
    """

    #: Attribute holding the classifier whose last linear layer gives the logits (what ``fer-zoo rebalance`` changes).
    head_attribute = "head"

    def __init__(
        self,
        num_classes: int = 7,
        class_names: list[str] | None = None,
        optimizer: str = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        momentum: float = 0.9,
        nesterov: bool = False,
        scheduler: str = "onecycle",
        cycle_momentum: bool = False,
        warmup_pct: float = 0.1,
        label_smoothing: float = 0.0,
        lr_gamma: float = 0.98,
        checkpoint_frozen: bool = False,
        test_time_flip: bool = False,
        channels_last: bool = False,
        logit_adjust_train_tau: float = 0.0,
        logit_adjust_tau: float = 0.0,
    ) -> None:
        """Configure the task.

        Args:
            num_classes: number of classes (linked from the data module by the CLI).
            class_names: class names in label order (linked from the data module).
            optimizer: ``adamw``, ``adam`` or ``sgd``.
            lr: peak learning rate.
            weight_decay: decoupled (AdamW) or L2 (SGD, Adam) weight decay.
            momentum: SGD momentum (Adam and AdamW keep their default betas).
            nesterov: Nesterov momentum for SGD (off: PyTorch's and the released codes' default).
            scheduler: ``onecycle`` (warm-up then cosine, per step), ``cosine`` (per step, no
                warm-up), ``linear`` (from ``lr`` down to 0, per step), ``exponential`` (``lr_gamma``
                per epoch, applied smoothly per step) or ``none``.
            cycle_momentum: let ``onecycle`` also cycle the momentum (SGD momentum, Adam beta1) from
                0.95 down to 0.85 and back, as ``OneCycleLR`` does by default. Off by default so that
                ``momentum`` (and Adam's beta1) mean what they say.
            lr_gamma: per-epoch decay of the ``exponential`` schedule.
            warmup_pct: share of steps spent warming up (onecycle).
            label_smoothing: cross-entropy label smoothing.
            checkpoint_frozen: also store frozen sub-networks that ``__init__`` loads from a
                weight spec (CLIP towers, LaCoVL's landmark network). By default they are left out
                and reloaded from the same spec, so an MPA checkpoint holds the prompts, not CLIP;
                set True to carry a checkpoint to a machine without those weight files.
            test_time_flip: at test and predict time, average the class probabilities of each image
                and its mirror image (horizontal-flip test-time augmentation, a common FER
                evaluation variant). Validation stays single-view, so checkpoint selection does not change;
                ``fer-zoo test --model.init_args.test_time_flip true`` re-tests a checkpoint this
                way. The ONNX export keeps the single-view path.
            channels_last: keep 4-D weights and image batches in channels-last (NHWC) memory
                order. oneDNN's convolutions run faster that way on CPU (and cuDNN's under bf16 on
                GPU); the values computed are the same up to float rounding. Checkpoints load
                either way.
            logit_adjust_train_tau: class-balanced training loss: the cross-entropy of
                ``logits + tau * log(prior)`` (logit-adjusted loss, Menon et al. 2021; ``1.0`` is the
                balanced softmax of Ren et al. 2020). The network then learns balanced-error logits,
                so rare classes gain recall at the cost of frequent ones. ``prior`` is the training
                split's class frequency, stored in the checkpoint. 0 (default): plain cross-entropy.
            logit_adjust_tau: post-hoc logit adjustment at test and predict time: subtract
                ``tau * log(prior)`` from the logits (Menon et al. 2021). Validation stays unadjusted;
                choose ``tau`` on validation (``python -m benchmarks.studies.logit_adjust``), never on test.
                Like ``test_time_flip`` it is a test-time option the evaluating command may change.
        """
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise OptionError(f"model.optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if scheduler not in SCHEDULERS:
            raise OptionError(f"model.scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise OptionError(f"model.class_names has {len(class_names)} names but num_classes={num_classes}")
        self.save_hyperparameters(logger=False)
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.train_acc = scalar_metrics(num_classes, "train/")["acc"]
        self.val_metrics = scalar_metrics(num_classes, "val/")
        self.test_metrics = scalar_metrics(num_classes, "test/")
        self.val_class_metrics = class_metrics(num_classes)
        self.test_class_metrics = class_metrics(num_classes)
        # cross-dataset evaluation: predictions restricted to the classes the data has
        self.val_shared_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_shared_confusion = MulticlassConfusionMatrix(num_classes)
        self.results: dict[str, dict[str, Any]] = {}
        # training-split class frequencies (set at fit time, saved with the weights) for logit adjustment
        self.register_buffer("class_prior", torch.full((num_classes,), 1.0 / num_classes))

    # --- to implement -----------------------------------------------------------------
    def forward(self, images: Tensor) -> Tensor:
        """Map images ``(B, 3, H, W)`` to logits ``(B, C)``."""
        raise NotImplementedError

    def training_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Loss of a training batch.

        Returns:
            ``(loss, logits, extra)``: the total loss, the classification logits and named
            loss terms to log.
        """
        logits = self(batch["image"])
        return self.classification_loss(logits, batch), logits, {}

    # --- memory layout ----------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Take the training set's state (fit) and move 4-D weights to channels-last when asked."""
        datamodule = getattr(self._trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None:
            self.prepare_fit(datamodule)
        if self.hparams.get("channels_last", False):
            self.to(memory_format=torch.channels_last)

    def prepare_fit(self, datamodule: Any) -> None:
        """Take what a training step reads from the training set; here the class prior.

        Called at fit setup (before a resumed checkpoint is restored over it) and by bare training loops such as
        ``benchmarks.speed``, so both run the same steps. Methods with per-sample state extend it.

        Args:
            datamodule: The set-up data module (``class_counts`` is read when it has one).
        """
        counts = getattr(datamodule, "class_counts", None)
        if counts is not None:
            self.set_class_prior(torch.as_tensor(counts("train"), dtype=torch.float64))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Give image batches the weights' memory layout, so no convolution converts them per call."""
        if self.hparams.get("channels_last", False) and isinstance(batch, dict):
            for key in ("image", "positive_image"):
                value = batch.get(key)
                if isinstance(value, Tensor) and value.ndim == 4:
                    batch[key] = value.contiguous(memory_format=torch.channels_last)
        return batch

    def set_class_prior(self, counts: Tensor) -> None:
        """Set :attr:`class_prior` from per-class training counts (an empty class counts as one sample)."""
        if len(counts) != self.num_classes:
            raise ValueError(f"class counts have {len(counts)} entries but the model has {self.num_classes} classes")
        counts = counts.clamp(min=1.0)
        self.class_prior.copy_((counts / counts.sum()).to(self.class_prior))

    def adjust_logits(self, logits: Tensor, tau: float) -> Tensor:
        """``logits + tau * log(prior)``: tau > 0 favours frequent classes, tau < 0 rare ones."""
        if tau == 0.0:
            return logits
        return logits + tau * self.class_prior.to(logits.dtype).log()

    # --- shared pieces ----------------------------------------------------------------
    def classification_loss(self, logits: Tensor, batch: dict[str, Any]) -> Tensor:
        """Cross-entropy with the soft ``target`` when the batch has one, else the hard label.

        With ``logit_adjust_train_tau`` the loss sees prior-shifted logits (logit-adjusted loss).
        """
        logits = self.adjust_logits(logits, self.hparams.get("logit_adjust_train_tau", 0.0))
        target = batch.get("target")
        if target is not None:
            return F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        return F.cross_entropy(logits, batch["label"], label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step; a non-finite loss stops the fit before it can reach the weights."""
        loss, logits, extra = self.training_loss(batch)
        self.check_finite(loss, extra)
        self.log_training(batch, loss, logits, extra)
        return loss

    def check_finite(self, loss: Tensor, terms: dict[str, Tensor]) -> None:
        """Raise ``FloatingPointError`` naming the step and the loss terms when the loss is NaN or Inf.

        Raised before ``backward``, so the weights (and every checkpoint written so far, e.g.
        ``last.ckpt``) stay those of the last good step. Under DDP the ranks agree first, so all stop.
        """
        finite = bool(torch.isfinite(loss.detach()).all())
        if self._trainer is not None and self.trainer.world_size > 1:
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            named = ", ".join(f"{k}={float(v.detach().float().mean()):.4g}" for k, v in terms.items())
            step = self.trainer.global_step if self._trainer is not None else -1
            raise FloatingPointError(
                f"non-finite training loss at step {step} (epoch {self.current_epoch}): loss={float(loss.detach()):.4g}"
                + (f"; terms: {named}" if named else "")
                + "; stopped before the update, so checkpoints/last.ckpt holds the last good weights "
                "(lower model.lr or check the inputs, then resume with --ckpt_path)"
            )

    def log_training(self, batch: dict[str, Any], loss: Tensor, logits: Tensor, extra: dict[str, Tensor]) -> None:
        """Log the loss, training accuracy and named loss terms of a step."""
        self.train_acc(logits.detach(), batch["label"])
        size = len(batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=size)
        for name, value in extra.items():
            self.log(f"train/{name}", value, batch_size=size)

    def evaluation_logits(self, images: Tensor, stage: str) -> Tensor:
        """Logits for evaluation at ``stage`` (``val``, ``test`` or ``predict``).

        With ``test_time_flip`` on, test and predict return the log of the mean class
        probabilities of the images and their mirror images (a valid log-probability, so the
        logged loss stays a cross-entropy); validation always uses the single view.
        """
        logits = self(images)
        if stage == "val":
            return logits
        if self.hparams.get("test_time_flip", False):
            views = torch.stack([logits.log_softmax(1), self(images.flip(-1)).log_softmax(1)])
            logits = torch.logsumexp(views, 0) - math.log(2.0)
        return self.adjust_logits(logits, -self.hparams.get("logit_adjust_tau", 0.0))

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        logits = self.evaluation_logits(batch["image"], stage)
        labels = batch["label"]
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels), sync_dist=True, batch_size=len(labels))
        preds = logits.argmax(1)
        getattr(self, f"{stage}_metrics").update(preds, labels)
        getattr(self, f"{stage}_class_metrics").update(preds, labels)
        shared = self.shared_class_ids()
        if shared is not None:
            absent = torch.ones(self.num_classes, dtype=torch.bool, device=logits.device)
            absent[shared] = False
            getattr(self, f"{stage}_shared_confusion").update(logits.masked_fill(absent, float("-inf")).argmax(1), labels)

    def shared_class_ids(self) -> list[int] | None:
        """Under cross-dataset evaluation, the ids of the model's classes the evaluation data has; else None."""
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        cross = getattr(datamodule, "cross_dataset", None)
        if not cross:
            return None
        return [self.class_names.index(name) for name in cross["shared"]]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulate validation metrics."""
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulate test metrics."""
        self._evaluate(batch, "test")

    def _epoch_end(self, stage: str) -> None:
        # compute() syncs across ranks: every rank must call it (not only rank zero).
        scalars = {k: float(v) for k, v in getattr(self, f"{stage}_metrics").compute().items()}
        per_class = getattr(self, f"{stage}_class_metrics").compute()
        accs: list[float | None] = per_class["per_class_acc"].tolist()
        extra: dict[str, Any] = {}
        shared = self.shared_class_ids()
        if shared is not None:
            # Averages over the classes the data has; a prediction of another model class is an error
            # ("all": argmax over every model class) unless those are masked ("shared" argmax).
            scores = confusion_scores(per_class["confusion"], shared)
            masked = confusion_scores(getattr(self, f"{stage}_shared_confusion").compute(), shared)
            scalars = {f"{stage}/{k}": scores[k] for k in ("acc", "mca", "f1_macro")}
            scalars.update({f"{stage}/shared_argmax/{k}": masked[k] for k in ("acc", "mca", "f1_macro")})
            accs = [None] * self.num_classes
            for i, acc in zip(shared, scores["per_class_acc"]):
                accs[i] = acc
            cross = self.trainer.datamodule.cross_dataset
            extra["cross_dataset"] = {
                **cross,
                "argmax_all_classes": {k: scores[k] for k in ("acc", "mca", "f1_macro")},
                "argmax_shared_classes": {k: masked[k] for k in ("acc", "mca", "f1_macro")},
                "per_class_acc_shared_argmax": dict(zip(cross["shared"], masked["per_class_acc"])),
            }
            getattr(self, f"{stage}_shared_confusion").reset()
        self.log_dict(scalars, prog_bar=stage == "val")
        self.log_dict({f"{stage}/acc_{n}": a for n, a in zip(self.class_names, accs) if a is not None})
        self.results[stage] = {
            **scalars,
            "per_class_acc": dict(zip(self.class_names, accs)),
            "support": dict(zip(self.class_names, per_class["confusion"].sum(1).tolist())),
            "confusion_matrix": per_class["confusion"].tolist(),
            "class_names": self.class_names,
            "epoch": self.current_epoch,
            **extra,
        }
        getattr(self, f"{stage}_metrics").reset()
        getattr(self, f"{stage}_class_metrics").reset()

    def on_validation_epoch_end(self) -> None:
        """Compute and log validation metrics."""
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        """Compute and log test metrics."""
        self._epoch_end("test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Class probabilities plus whatever identifies each input (path, face, box)."""
        probs = self.evaluation_logits(batch["image"], "predict").softmax(1)
        out = {k: v for k, v in batch.items() if k not in ("image", "label", "landmarks", "target")}
        out["probs"] = probs
        return out

    def warmup_factor(self, epochs: float) -> float:
        """Linear ramp from 0 to 1 over the first ``epochs`` epochs of fit, by step (1 when ``epochs <= 0``)."""
        if epochs <= 0 or self._trainer is None:
            return 1.0
        steps_per_epoch = max(self.trainer.estimated_stepping_batches / max(self.trainer.max_epochs or 1, 1), 1)
        return min(1.0, self.trainer.global_step / (epochs * steps_per_epoch))

    # --- optimisation -----------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Parameter groups; biases and norm weights get no weight decay."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]

    def configure_optimizers(self) -> Any:
        """Optimizer and per-step scheduler from the config."""
        hp = self.hparams
        groups = self.parameter_groups()
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(
                groups,
                lr=hp.lr,
                momentum=hp.momentum,
                weight_decay=hp.weight_decay,
                nesterov=bool(hp.get("nesterov", False)) and hp.momentum > 0,
            )
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return opt
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        if hp.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=hp.lr,
                total_steps=steps,
                pct_start=hp.warmup_pct,
                anneal_strategy="cos",
                cycle_momentum=bool(hp.get("cycle_momentum", False)),
            )
        elif hp.scheduler == "exponential":
            per_epoch = steps / max(int(self.trainer.max_epochs or 1), 1)
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=hp.lr_gamma ** (1.0 / max(per_epoch, 1.0)))
        elif hp.scheduler == "linear":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / steps))
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- checkpoints --------------------------------------------------------------------
    def reloadable_frozen(self) -> dict[str, Tensor]:
        """Frozen parameters that ``__init__`` rebuilds from a weight spec, by state-dict name.

        A sub-module opts in by setting ``reloadable_from_spec = True`` when it loaded weights
        from a spec; only its parameters without gradients count (prompts inside it still train
        and are saved).
        """
        owners = tuple(f"{name}." for name, m in self.named_modules() if getattr(m, "reloadable_from_spec", False))
        if not owners:
            return {}
        return {n: p for n, p in self.named_parameters() if n.startswith(owners) and not p.requires_grad}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave out frozen weights that the weight spec restores (see ``checkpoint_frozen``)."""
        frozen = {} if self.hparams.get("checkpoint_frozen") else self.reloadable_frozen()
        if frozen:
            for name in frozen:
                checkpoint["state_dict"].pop(name, None)
            checkpoint["fer_zoo_reloaded"] = {"fingerprints": {n: _fingerprint(frozen[n]) for n in sorted(frozen)}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put back the frozen weights a slim checkpoint left out, after checking they are the same.

        A checkpoint from before the class prior was recorded gets the uniform prior.
        """
        checkpoint["state_dict"].setdefault("class_prior", self.class_prior.detach().clone())
        saved = checkpoint.get("fer_zoo_reloaded")
        if not saved:
            return
        frozen = self.reloadable_frozen()
        expected = saved["fingerprints"]
        missing = [n for n in expected if n not in frozen]
        changed = [n for n in expected if n in frozen and not _same(_fingerprint(frozen[n]), expected[n])]
        if missing or changed:
            specs = {k: v for k, v in self.hparams.items() if k.endswith("weights")}
            raise ValueError(
                f"the checkpoint left out {len(expected)} frozen weights to be reloaded from their spec, but "
                f"the weights loaded now ({specs}) "
                + (
                    f"lack {missing[0]!r}"
                    if missing
                    else f"differ from those it was trained with (first: {changed[0]!r})"
                )
                + "; pass the same weight files, or save with model.checkpoint_frozen=true"
            )
        checkpoint["state_dict"].update({n: frozen[n].detach().clone() for n in expected})

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameter count of the model."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def inference_modules(self) -> list[nn.Module]:
        """Modules used at inference (for parameter counts); default: the whole model."""
        return [self]


def _fingerprint(tensor: Tensor) -> list[float]:
    """Shape-independent fingerprint of a tensor: float64 sums of its values and of their squares."""
    values = tensor.detach().double()
    return [values.sum().item(), values.pow(2).sum().item()]


def _same(a: list[float], b: list[float]) -> bool:
    return all(abs(x - y) <= 1e-6 * max(1.0, abs(y)) for x, y in zip(a, b, strict=True))
