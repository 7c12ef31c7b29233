import math

import pytest
import torch

from fer_zoo.labels import class_names
from fer_zoo.models import E2N
from fer_zoo.models.e2n import self_contrast_loss, transformation_loss

TEXT = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # class 0 = neutral, class 1: t1 - t0 = (1, 0)


def tiny_e2n(names=("happiness", "neutral", "anger"), **kwargs):
    return E2N(num_classes=len(names), class_names=list(names), clip_arch="FERZoo-Tiny", **kwargs)


@pytest.mark.parametrize(("delta_v", "expected"), [((2.0, 0.0), 0.0), ((0.0, 3.0), 1.0), ((-1.0, 0.0), 2.0)])
def test_transformation_loss_matches_the_direction(delta_v, expected):
    v = torch.tensor([[5.0, 5.0], [9.0, -4.0]])
    n = v - torch.tensor([delta_v, (7.0, 7.0)])
    labels = torch.tensor([1, 0])  # the neutral sample is excluded
    assert transformation_loss(v, n, TEXT, labels, neutral_idx=0).item() == pytest.approx(expected, abs=1e-6)


def test_losses_on_an_all_neutral_batch_are_zero_with_a_gradient_path():
    v = torch.randn(3, 2, requires_grad=True)
    n = torch.randn(3, 2)
    labels = torch.zeros(3, dtype=torch.long)
    for loss in (transformation_loss(v, n, TEXT, labels, 0), self_contrast_loss(v, n, TEXT, labels, 0)):
        assert loss.item() == 0.0
        loss.backward()


def test_self_contrast_per_sample():
    v = torch.tensor([[1.0, 1.0]])  # cos(t1, v) = 1
    n = torch.tensor([[1.0, -1.0]])  # cos(t1, n) = 0
    loss = self_contrast_loss(v, n, TEXT, torch.tensor([1]), neutral_idx=0)
    assert loss.item() == pytest.approx(0.0 - 1.0 + 2.0)


def test_self_contrast_all_pairs_matches_the_released_code():
    v = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    n = torch.tensor([[1.0, -1.0], [0.0, 1.0]])
    labels = torch.tensor([1, 1])
    c = 1 / math.sqrt(2)  # cos(t1, e_x) = cos(t1, e_y)
    # anchor t1 against every v_j: (1, c); against every n_j: (0, c)
    expected = ((0 + c) - (1 + c)) / 2 + 2
    got = self_contrast_loss(v, n, TEXT, labels, 0, all_pairs=True)
    per_sample = self_contrast_loss(v, n, TEXT, labels, 0, all_pairs=False)
    assert got.item() == pytest.approx(expected) and per_sample.item() == pytest.approx(((0 - 1) + (c - c)) / 2 + 2)


@pytest.mark.parametrize(("dataset", "neutral"), [("rafdb", 6), ("ferplus", 0), ("affectnet8", 0)])
def test_neutral_index_comes_from_the_class_names(dataset, neutral):
    names = class_names(dataset)
    assert tiny_e2n(names).neutral_idx == neutral


def test_missing_neutral_class_is_named():
    with pytest.raises(ValueError, match="model.neutral_class"):
        tiny_e2n(("happiness", "anger"))


def test_training_loss_trains_backbone_head_and_transform_but_not_the_text():
    torch.manual_seed(0)
    model = tiny_e2n()
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 0])}
    loss, logits, extra = model.training_loss(batch)
    loss.backward()
    assert logits.shape == (4, 3) and set(extra) == {"loss_s", "loss_t", "loss_c"}
    assert model.transform[0].weight.grad is not None and model.backbone.conv1.weight.grad is not None
    assert not model.class_text.requires_grad
    assert logits.abs().max() <= 100.0 + 1e-4  # scaled cosines


def test_class_text_is_saved_and_restored_with_the_checkpoint():
    torch.manual_seed(0)
    model = tiny_e2n()
    torch.manual_seed(1)
    other = tiny_e2n()  # a different random text tower gives other features
    assert not torch.allclose(model.class_text, other.class_text)
    other.load_state_dict(model.state_dict())
    model.eval(), other.eval()
    images = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(images), other(images))


def test_minilm_text_space():
    model = tiny_e2n(text_source="minilm")
    assert model.class_text.shape == (3, 384) and model.head[-1].num_features == 384
    assert torch.allclose(model.class_text.norm(dim=-1), torch.ones(3))


def test_clip_text_difference_uses_raw_clip_features():
    # The released code takes t_y - t_neutral on CLIP's raw (unnormalised) text features.
    from fer_zoo.models.components.clip import CLIPEncoder
    from fer_zoo.models.components.text import class_prompts

    torch.manual_seed(0)
    model = tiny_e2n()
    torch.manual_seed(0)
    clip = CLIPEncoder("FERZoo-Tiny", freeze="all", with_image=False).eval()
    with torch.no_grad():
        raw = clip.encode_text(class_prompts(model.hparams.prompt_template, model.class_names))
    assert torch.allclose(model.class_text, raw, atol=1e-5)
    assert not torch.allclose(model.class_text.norm(dim=-1), torch.ones(3), atol=1e-3)
    # so the direction of t_y - t_neutral is that of the raw features, not of the normalised ones
    v = torch.randn(3, raw.shape[1])
    labels = torch.tensor([0, 2, 0])
    n = v - (raw[labels] - raw[model.neutral_idx])
    assert transformation_loss(v, n, model.class_text, labels, model.neutral_idx).item() == pytest.approx(0.0, abs=1e-5)


def test_learned_logit_scale_starts_at_its_value_trains_and_is_capped():
    torch.manual_seed(0)
    model = tiny_e2n(logit_scale=1 / 0.07, learn_logit_scale=True)
    assert float(model.scale.detach()) == pytest.approx(1 / 0.07, rel=1e-5)
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 0])}
    loss, _, extra = model.training_loss(batch)
    loss.backward()
    assert model.log_logit_scale.grad is not None and "logit_scale" in extra
    with torch.no_grad():
        model.log_logit_scale.fill_(10.0)
    assert float(model.scale.detach()) == pytest.approx(100.0)
    fixed = tiny_e2n(logit_scale=30.0)
    assert fixed.scale == 30.0 and not any("logit_scale" in n for n, _ in fixed.named_parameters())


def test_linear_head_option():
    model = tiny_e2n(head="linear")
    assert [type(m).__name__ for m in model.head] == ["Linear"] and model.head[0].bias is not None
    with pytest.raises(ValueError, match="model.head"):
        tiny_e2n(head="mlp")
