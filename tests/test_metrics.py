import torch

from fer_zoo.labels import CLASSES, index_map, remap_logits
from fer_zoo.metrics import class_metrics, scalar_metrics


def test_micro_and_macro_are_not_confused():
    preds, target = torch.tensor([2, 1, 0, 1]), torch.tensor([2, 1, 0, 0])
    result = scalar_metrics(3, "val/")(preds, target)
    assert abs(float(result["val/acc"]) - 0.75) < 1e-6  # overall (micro)
    assert abs(float(result["val/mca"]) - (0.5 + 1 + 1) / 3) < 1e-6  # mean class (macro)
    per_class = class_metrics(3)(preds, target)
    assert per_class["per_class_acc"].tolist() == [0.5, 1.0, 1.0]
    assert per_class["confusion"].sum() == 4 and per_class["confusion"][0, 1] == 1


def test_index_maps_between_datasets():
    m = index_map(CLASSES["rafdb"], CLASSES["ferplus"])
    assert [CLASSES["ferplus"][i] for i in m] == list(CLASSES["rafdb"])
    assert (index_map(CLASSES["affectnet8"], CLASSES["affectnet7"]) == [0, 1, 2, 3, 4, 5, 6, -1]).all()
    logits = torch.arange(8.0).unsqueeze(0)  # a FERPlus model
    sub, keep = remap_logits(logits, CLASSES["ferplus"], CLASSES["rafdb"])
    assert sub.shape == (1, 7) and list(keep) == list(range(7))
    assert sub[0, 0] == CLASSES["ferplus"].index("surprise")
