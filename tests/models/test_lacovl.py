import pytest
import torch
import torch.nn.functional as F

from fer_zoo.models import LaCoVL
from fer_zoo.models.components.lacovl import BGCA, CrossSimilarityAttention, LandmarkNet
from fer_zoo.models.lacovl import in_batch_positives

NAMES = ["happiness", "neutral", "anger"]
TINY = {"pyramid": "resnet18", "dim": 32, "heads": 2, "clip_arch": "FERZoo-Tiny", "landmark_input": 64}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LaCoVL(num_classes=3, class_names=NAMES, **TINY)


def test_in_batch_positives_share_the_label_and_avoid_self():
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    for _ in range(5):
        pos = in_batch_positives(labels)
        assert torch.equal(labels[pos], labels)
        assert pos[3] == 3  # alone in its class
        assert all(pos[i] != i for i in (0, 1, 2, 4, 5))


def test_cross_similarity_weights_are_symmetric_for_a_self_pair():
    torch.manual_seed(0)
    block = CrossSimilarityAttention(8)
    x = torch.randn(2, 5, 8)
    a, p = block(x, x)
    assert torch.allclose(a, p, atol=1e-6) and a.shape == x.shape


def test_bgca_starts_close_to_its_input_gate_mix():
    torch.manual_seed(0)
    block = BGCA(16, heads=2)
    x, lm = torch.randn(2, 9, 16), torch.randn(2, 9, 16)
    assert block(x, lm).shape == x.shape


def test_qcs_objective_adds_the_base_terms_and_infers_with_the_base_branch(model):
    torch.manual_seed(1)
    batch = {"image": torch.randn(4, 3, 48, 48), "label": torch.tensor([0, 1, 0, 2])}
    loss, logits, extra = model.training_loss(batch)
    ce = {k[3:]: v for k, v in extra.items()}
    assert set(ce) == {"vis_a", "vis_p", "sem_a", "sem_p", "base_a", "base_p"}
    expected = 0.25 * sum(ce.values())  # lambda_sem = 1
    assert torch.allclose(loss.detach(), expected) and logits.shape == (4, 3)
    assert torch.equal(batch["image"][batch["in_batch_positive"]][2], batch["image"][0])
    with torch.no_grad():  # the base term is the CE of the base head on the anchor's class token
        base_a = F.cross_entropy(model.base_head(model.encode(batch["image"])[1]), batch["label"])
    assert torch.allclose(ce["base_a"], base_a, atol=1e-5)
    model.eval()
    with torch.no_grad():
        _, cls = model.encode(batch["image"][:2])
        assert torch.allclose(model(batch["image"][:2]), model.base_head(cls), atol=1e-5)
    model.train()


def test_figure_objective_is_the_figures_average_and_infers_with_the_self_pair():
    torch.manual_seed(0)
    model = LaCoVL(num_classes=3, class_names=NAMES, objective="figure", inference="vis", lambda_sem=0.5, **TINY)
    torch.manual_seed(1)
    batch = {"image": torch.randn(4, 3, 48, 48), "label": torch.tensor([0, 1, 0, 2])}
    loss, _, extra = model.training_loss(batch)
    assert "ce_base_a" not in extra
    expected = 0.25 * (extra["ce_vis_a"] + extra["ce_vis_p"] + 0.5 * (extra["ce_sem_a"] + extra["ce_sem_p"]))
    assert torch.allclose(loss.detach(), expected)
    model.eval()
    with torch.no_grad():
        patches, _ = model.encode(batch["image"][:2])
        assert torch.allclose(model(batch["image"][:2]), model.cross(patches, patches)[0], atol=1e-5)
    with pytest.raises(ValueError, match="model.objective=qcs"):
        LaCoVL(num_classes=3, class_names=NAMES, objective="figure", inference="base", **TINY)


def test_sem_detach_keeps_the_semantic_gradient_out_of_the_encoder():
    torch.manual_seed(0)
    model = LaCoVL(num_classes=3, class_names=NAMES, sem_detach=True, lambda_sem=1.0, **TINY)
    batch = {"image": torch.randn(4, 3, 48, 48), "label": torch.tensor([0, 1, 0, 2])}
    _, _, extra = model.training_loss(batch)
    # only the semantic terms: the encoder gets no gradient, the semantic head does
    model.zero_grad(set_to_none=True)
    model.training_loss(batch)  # logits are rebuilt; take the semantic CE alone
    patches, cls = model.encode(batch["image"])
    sem = model.semantic(batch["image"], cls.detach())
    F.cross_entropy(sem, batch["label"]).backward()
    assert model.vit.cls.grad is None and model.sem_proj.weight.grad is not None
    assert set(extra) >= {"ce_sem_a", "ce_base_a"}


def test_semantic_weight_warms_up_linearly():
    class FakeTrainer:
        estimated_stepping_batches, max_epochs, global_step = 100, 10, 5

    torch.manual_seed(0)
    model = LaCoVL(num_classes=3, class_names=NAMES, sem_warmup_epochs=2, lambda_sem=0.8, **TINY)
    model._trainer = FakeTrainer()
    assert model.semantic_weight() == pytest.approx(0.8 * 5 / 20)  # 10 steps per epoch, 2 epochs of warm-up
    FakeTrainer.global_step = 50
    assert model.semantic_weight() == pytest.approx(0.8)


def test_cross_similarity_qcs_details_use_batch_wide_min_max_and_one_mlp():
    torch.manual_seed(0)
    qcs, per_sample = CrossSimilarityAttention(8, qcs_details=True), CrossSimilarityAttention(8, qcs_details=False)
    assert qcs.ffn_a is qcs.ffn_p and per_sample.ffn_a is not per_sample.ffn_p
    per_sample.load_state_dict({k: v for k, v in qcs.state_dict().items()}, strict=False)
    per_sample.ffn_p.load_state_dict(qcs.ffn_a.state_dict())
    a, p = torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    # one sample: batch-wide and per-sample min/max agree
    for x, y in zip(qcs(a, p), per_sample(a, p)):
        assert torch.allclose(x, y, atol=1e-6)
    # a second, far-away sample changes the batch-wide shift and so the first sample's output
    a2, p2 = torch.cat([a, 10 * torch.randn(1, 5, 8)]), torch.cat([p, 10 * torch.randn(1, 5, 8)])
    assert not torch.allclose(qcs(a2, p2)[0][0], qcs(a, p)[0][0], atol=1e-4)
    assert torch.allclose(per_sample(a2, p2)[0][0], per_sample(a, p)[0][0], atol=1e-5)


def test_frozen_parts_get_no_gradient_and_landmark_net_stays_in_eval(model):
    model.train()
    assert not model.landmark_net.training
    assert not any(m.training for m in model.clip.model.modules()) and model.vit.training
    model.zero_grad(set_to_none=True)
    batch = {
        "image": torch.randn(4, 3, 48, 48),
        "label": torch.tensor([0, 1, 0, 2]),
        "positive_image": torch.randn(4, 3, 48, 48),
    }
    model.training_loss(batch)[0].backward()
    assert all(p.grad is None for p in model.landmark_net.parameters())
    assert all(p.grad is None for p in model.clip.parameters())
    assert model.alpha.grad is not None and model.pyramid.stages[0][0].conv1.weight.grad is not None


def test_landmark_weights_load_from_a_pretrained_file(tmp_path):
    torch.manual_seed(3)
    net = LandmarkNet(64)
    torch.save(net.state_dict(), tmp_path / "landmark_net.pt")
    model = LaCoVL(num_classes=3, class_names=NAMES, landmark_weights=str(tmp_path / "landmark_net.pt"), **TINY)
    assert torch.equal(model.landmark_net.head[-1].weight, net.head[-1].weight)


def test_fusion_returns_log_probabilities():
    torch.manual_seed(0)
    model = LaCoVL(num_classes=3, class_names=NAMES, inference="fusion", fusion_weight=1.0, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 48, 48))
    assert torch.allclose(out.exp().sum(1), torch.full((2,), 2.0), atol=1e-4)  # two distributions summed
    with pytest.raises(ValueError, match="model.inference"):
        LaCoVL(num_classes=3, class_names=NAMES, inference="mean", **TINY)


def test_positive_pairs_dataset_draws_the_same_class():
    from fer_zoo.datamodules import SyntheticDataModule

    dm = SyntheticDataModule(
        num_train=40,
        num_val=8,
        num_test=8,
        synth_size=32,
        image_size=32,
        num_workers=0,
        batch_size=8,
        positive_pairs=True,
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    batch = next(iter(loader))
    labels = torch.as_tensor(dm.dataset("train").labels)
    assert torch.equal(labels[batch["positive_index"]], batch["label"])
    assert batch["positive_image"].shape == batch["image"].shape
    assert F.mse_loss(batch["positive_image"], batch["image"]) > 0


def test_positive_pairs_differ_across_workers_and_epochs():
    from torch.utils.data import DataLoader

    from fer_zoo.datasets.pairs import PositivePairs

    class Labels(torch.utils.data.Dataset):
        labels = [0] * 200  # one class: any other index is a valid positive

        def __len__(self):
            return 200

        def __getitem__(self, index):
            return {"image": torch.zeros(1), "label": 0}

    pairs = PositivePairs(Labels(), seed=0)
    torch.manual_seed(0)
    loader = DataLoader(pairs, batch_size=100, num_workers=2)  # one batch per worker
    epochs = [torch.cat([b["positive_index"] for b in loader]) for _ in range(2)]
    first = epochs[0].view(2, 100)
    # with a generator copied into each forked worker, both workers (and both epochs) would draw alike
    assert (first[0] != first[1]).float().mean() > 0.9
    assert (epochs[0] != epochs[1]).float().mean() > 0.9
    assert (epochs[0] != torch.arange(200)).all()


def test_soft_targets_reach_every_term_and_the_in_batch_positive_keeps_its_own(model):
    torch.manual_seed(2)
    labels = torch.tensor([0, 1, 0, 2])
    target = torch.tensor([[0.6, 0.4, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [0.0, 0.2, 0.8]])
    batch = {"image": torch.randn(4, 3, 48, 48), "label": labels, "target": target}
    model.eval()  # dropout off: the same logits twice
    with torch.no_grad():
        loss, _, extra = model.training_loss(batch)
        positives = batch["in_batch_positive"]
        vis_a, vis_p = model.cross(model.encode(batch["image"])[0], model.encode(batch["image"][positives])[0])
    model.train()
    smoothing = model.hparams.label_smoothing
    by_hand_a = F.cross_entropy(vis_a, target, label_smoothing=smoothing)
    by_hand_p = F.cross_entropy(vis_p, target[positives], label_smoothing=smoothing)
    assert torch.allclose(extra["ce_vis_a"], by_hand_a, atol=1e-5)
    assert torch.allclose(extra["ce_vis_p"], by_hand_p, atol=1e-5)
    hard = F.cross_entropy(vis_a, labels, label_smoothing=smoothing)
    assert not torch.allclose(extra["ce_vis_a"], hard, atol=1e-3)  # the soft target changed the loss
