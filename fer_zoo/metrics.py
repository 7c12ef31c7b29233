"""FER metrics with explicit averaging (``MulticlassAccuracy`` alone defaults to macro)."""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score


def scalar_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Overall accuracy (micro, a.k.a. WAR), mean class accuracy (macro, UAR) and macro-F1.

    Args:
        num_classes: fixed number of classes (never inferred: DDP ranks must agree).
        prefix: key prefix, e.g. ``"val/"``.
    """
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "mca": MulticlassAccuracy(num_classes, average="macro"),
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
        },
        prefix=prefix,
    )


def class_metrics(num_classes: int) -> MetricCollection:
    """Per-class accuracy (recall) and the confusion matrix (rows: true, columns: predicted)."""
    return MetricCollection(
        {
            "per_class_acc": MulticlassAccuracy(num_classes, average=None),
            "confusion": MulticlassConfusionMatrix(num_classes),
        }
    )


def confusion_scores(confusion: torch.Tensor, classes: list[int]) -> dict[str, float]:
    """OA, MCA and macro-F1 from a confusion matrix, averaged over the given classes only.

    Used when the test set has fewer classes than the model (cross-dataset evaluation): rows
    of classes the test set lacks are empty and must not enter the macro averages, while
    predictions of those classes (their columns) still count as errors.

    Args:
        confusion: ``(C, C)`` counts, rows true, columns predicted.
        classes: the class ids the averages run over (the test set's classes).

    Returns:
        ``acc`` (micro), ``mca`` (mean recall over ``classes``), ``f1_macro`` (mean F1 over
        ``classes``), and ``per_class_acc`` (recall of each class in ``classes``).
    """
    cm = confusion.double()
    ids = torch.as_tensor(classes, dtype=torch.long)
    tp = cm.diagonal()[ids]
    support = cm[ids].sum(1)
    predicted = cm[:, ids].sum(0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0 * tp)
    total = cm[ids].sum()
    return {
        "acc": float(tp.sum() / total) if total > 0 else 0.0,
        "mca": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        "per_class_acc": recall.tolist(),
    }


def prediction_confusion(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The ``(C, C)`` confusion matrix (rows true, columns predicted) of ``logits.argmax(1)`` against ``labels``."""
    n = logits.shape[1]
    return torch.bincount(labels * n + logits.argmax(1), minlength=n * n).view(n, n)
