import pytest
import torch
import torch.nn.functional as F

from fer_zoo.models import LANet
from fer_zoo.models.components.lanet import (
    PairScorer,
    adaptive_wing,
    expression_landmark_contrast,
    knn_mask,
    neighbour_distribution,
)


def test_adaptive_wing_is_zero_at_the_target_and_continuous_at_theta():
    target = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(adaptive_wing(target, target), torch.zeros(3))
    below = adaptive_wing(torch.tensor([0.5 - 1e-4]), torch.tensor([0.0]))
    above = adaptive_wing(torch.tensor([0.5 + 1e-4]), torch.tensor([0.0]))
    assert abs(float(below - above)) < 1e-2
    far = adaptive_wing(torch.tensor([3.0]), torch.tensor([0.0]))
    farther = adaptive_wing(torch.tensor([4.0]), torch.tensor([0.0]))
    assert float(farther - far) > 0  # linear beyond theta


def test_knn_excludes_self_and_picks_the_nearest():
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    mask = knn_mask(features, k=1)
    assert mask.tolist() == [
        [False, True, False, False],
        [True, False, False, False],
        [False, False, False, True],
        [False, False, True, False],
    ]


def test_neighbour_distribution_with_equal_scores_is_the_neighbour_mean():
    scorer = PairScorer(4)
    for p in scorer.mlp[-1].parameters():
        torch.nn.init.zeros_(p)  # equal pair scores
    features = torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0], [0.8, 0.2, 0, 0], [0, 0, 1.0, 0]])
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    d = neighbour_distribution(scorer, features, probs, k=2)
    assert torch.allclose(d[0], (probs[1] + probs[2]) / 2) and torch.allclose(d.sum(1), torch.ones(4))


def test_el_loss_known_answer():
    q = torch.tensor([[1.0, 0.0]])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    T = 1.0
    # query label 3: key 0 is its positive (label 3), key 1 is not; queue entry 0 has label 3 (not a negative).
    loss = expression_landmark_contrast(
        q, torch.tensor([3]), keys, torch.tensor([3, 5]), queue, torch.tensor([3, 7]), T
    )
    expected = -torch.log(torch.exp(torch.tensor(1.0)) / (torch.exp(torch.tensor(1.0)) + torch.exp(torch.tensor(-1.0))))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def _batch(n=8, size=32):
    torch.manual_seed(0)
    return {
        "image": torch.randn(n, 3, size, size),
        "label": torch.arange(n) % 3,
        "index": torch.arange(n),
        "landmarks": torch.rand(n, 68, 2) * size,
        "landmark_found": torch.tensor([True] * (n - 1) + [False]),
    }


def test_training_step_losses_gradients_bank_and_queue():
    model = LANet(num_classes=3, class_names=["a", "b", "c"], queue_size=16, knn=3)
    model.bank = F.one_hot(torch.arange(8) % 3, 3).float()
    batch = _batch()
    loss, logits, extra = model.training_loss(batch)
    assert set(extra) == {"loss_ce", "loss_lm", "loss_kl", "loss_el"} and torch.isfinite(loss)
    loss.backward()
    # q is not detached: the KL trains the pair scorers
    assert model.scorer_u.fc_in.weight.grad is not None and model.scorer_v.fc_in.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.key_net.parameters())
    assert not torch.equal(model.bank, F.one_hot(torch.arange(8) % 3, 3).float())  # moving average updated
    before = model.key_net.stem[0].weight.clone()
    with torch.no_grad():
        model.net.stem[0].weight.add_(1.0)
    model.on_train_batch_end(None, batch, 0)
    assert torch.allclose(model.key_net.stem[0].weight, before + 0.001, atol=1e-5)
    assert int(model.queue_ptr) == 8 and (model.queue_labels[:8] > -(10**9)).all()


def test_prepare_fit_fills_the_bank_with_one_hot_training_labels_and_the_class_prior():
    """What a fit's setup and the speed benchmark's bare loop both give the model before its first step."""
    from types import SimpleNamespace

    labels = [2, 0, 0, 1, 0]
    train = type("Train", (), {"labels": labels, "__len__": lambda self: len(labels)})()
    datamodule = SimpleNamespace(dataset=lambda split: train, class_counts=lambda split: [3, 1, 1])
    model = LANet(num_classes=3, class_names=["a", "b", "c"], queue_size=16, knn=3)
    assert model.bank.shape == (0, 3)  # a step before prepare_fit would index an empty bank
    model.prepare_fit(datamodule)
    assert model.bank.tolist() == [[0, 0, 1], [1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert model.class_prior.tolist() == pytest.approx([0.6, 0.2, 0.2])
    assert "bank" in dict(model.named_buffers())  # still a buffer: saved, moved to the device
    model.bank[0] = torch.tensor([0.2, 0.3, 0.5])
    model.prepare_fit(datamodule)  # a bank of the right size (restored or already trained) is kept
    assert model.bank[0].tolist() == pytest.approx([0.2, 0.3, 0.5])


def test_landmark_loss_warm_up_ramps_its_weight():
    torch.manual_seed(0)
    model = LANet(num_classes=3, class_names=["a", "b", "c"], queue_size=16, knn=3, lm_warmup_epochs=2, lambda_lm=2.0)
    asked = []
    for factor in (0.0, 0.25, 1.0):  # FERTask.warmup_factor's ramp is tested in test_base
        model.warmup_factor = lambda epochs, f=factor: asked.append(epochs) or f
        model.bank = F.one_hot(torch.arange(8) % 3, 3).float()
        loss, _, extra = model.training_loss(_batch())
        expected = extra["loss_ce"] + 2.0 * factor * extra["loss_lm"] + extra["loss_kl"] + 0.1 * extra["loss_el"]
        assert torch.allclose(loss.detach(), expected, atol=1e-5), factor
    assert asked == [2, 2, 2]


def test_inference_uses_the_expression_branch_only():
    model = LANet(num_classes=3, class_names=["a", "b", "c"], queue_size=16).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.fer_fc(model.net.expression(images))
        model.net.lm[0][0].conv1.weight.add_(5.0)  # the landmark branch does not matter
        assert torch.allclose(model(images), expected)


def test_missing_landmarks_are_a_named_error():
    model = LANet(num_classes=3, class_names=["a", "b", "c"], queue_size=16)
    model.bank = torch.zeros(8, 3)
    batch = _batch()
    del batch["landmarks"]
    with pytest.raises(ValueError, match="data.landmarks mediapipe"):
        model.training_loss(batch)


def test_heatmap_stride_two_doubles_the_heatmap_side_and_keeps_v():
    from fer_zoo.models.components.lanet import TwoBranchResNet

    torch.manual_seed(0)
    paper = TwoBranchResNet("resnet18", None, 19).eval()
    fine = TwoBranchResNet("resnet18", None, 19, heatmap_stride=2).eval()
    missing, unexpected = fine.load_state_dict(paper.state_dict(), strict=False)
    assert missing == ["stem_lateral.weight", "stem_lateral.bias"] and not unexpected
    images = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        u4, v4, h4 = paper(images)
        u2, v2, h2 = fine(images)
    assert h4.shape == (2, 19, 12, 12) and h2.shape == (2, 19, 24, 24)
    # u and v do not depend on the extra level; only the heatmaps go one level finer
    assert torch.allclose(u4, u2) and torch.allclose(v4, v2)
    with pytest.raises(ValueError, match="heatmap_stride"):
        TwoBranchResNet("resnet18", None, 19, heatmap_stride=8)
    model = LANet(num_classes=3, class_names=["a", "b", "c"], queue_size=16, knn=3, heatmap_stride=2)
    model.bank = F.one_hot(torch.arange(8) % 3, 3).float()
    loss, _, extra = model.training_loss(_batch())
    assert torch.isfinite(extra["loss_lm"])
    loss.backward()
    assert model.net.stem_lateral.weight.grad.abs().sum() > 0
