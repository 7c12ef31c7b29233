"""FER metrics with explicit averaging (``MulticlassAccuracy`` alone defaults to macro)."""

from __future__ import annotations

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
