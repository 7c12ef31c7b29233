import pytest
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


def test_confusion_scores_average_over_the_given_classes_only():
    from fer_zoo.metrics import confusion_scores

    # classes 0..2; the data has classes 0 and 1 only; class 2 is predicted twice (errors)
    cm = torch.tensor([[3, 1, 1], [0, 2, 2], [0, 0, 0]])
    s = confusion_scores(cm, [0, 1])
    assert s["acc"] == pytest.approx(5 / 9)
    assert s["per_class_acc"] == pytest.approx([3 / 5, 2 / 4])
    assert s["mca"] == pytest.approx((3 / 5 + 2 / 4) / 2)
    # precision: class 0 3/3, class 1 2/3 -> F1 2*1*0.6/1.6 = 0.75 and 2*(2/3)*(1/2)/(7/6) = 4/7
    assert s["f1_macro"] == pytest.approx((0.75 + 4 / 7) / 2)


def test_folder_names_map_to_canonical_classes():
    from fer_zoo.labels import canonical_name

    assert canonical_name("Happy") == canonical_name("happiness") == canonical_name("3_happy") == "happiness"
    assert canonical_name("angry") == "anger" and canonical_name("sad") == "sadness"
    assert canonical_name("Neutral") == "neutral" and canonical_name("fearful") == "fear"
    assert canonical_name("cats") is None
