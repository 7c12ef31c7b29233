import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from fer_zoo.errors import OptionError
from fer_zoo.models import Baseline


class RecordMomentum(L.Callback):
    def __init__(self):
        self.momenta, self.betas, self.nesterov = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        group = trainer.optimizers[0].param_groups[0]
        self.momenta.append(group.get("momentum"))
        self.betas.append(group.get("betas"))
        self.nesterov.append(group.get("nesterov"))


def fit_recording(tmp_path, **options):
    torch.manual_seed(0)
    data = [{"image": torch.randn(3, 16, 16), "label": torch.tensor(i % 3)} for i in range(24)]
    model = Baseline(num_classes=3, scheduler="onecycle", lr=0.01, **options)
    record = RecordMomentum()
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[record],
        default_root_dir=tmp_path,
    )
    trainer.fit(model, DataLoader(data, batch_size=4))
    return record


def test_onecycle_leaves_sgd_momentum_alone_by_default(tmp_path):
    record = fit_recording(tmp_path, optimizer="sgd", momentum=0.9)
    assert record.momenta == [0.9] * 12 and record.nesterov == [False] * 12


def test_onecycle_leaves_adamw_beta1_alone_by_default(tmp_path):
    record = fit_recording(tmp_path, optimizer="adamw")
    assert {b[0] for b in record.betas} == {0.9}


def test_cycle_momentum_and_nesterov_are_explicit_options(tmp_path):
    record = fit_recording(tmp_path, optimizer="sgd", momentum=0.9, cycle_momentum=True, nesterov=True)
    # OneCycleLR's own cycle: 0.95 at the start, down to 0.85 at the peak of the learning rate
    assert record.momenta[0] == pytest.approx(0.95) and min(record.momenta) < 0.87
    assert record.nesterov == [True] * 12


def test_warmup_factor_is_a_linear_ramp_by_step():
    class FakeTrainer:
        estimated_stepping_batches, max_epochs, global_step = 60, 6, 0  # 10 steps per epoch

    model = Baseline(num_classes=3)
    assert model.warmup_factor(2) == 1.0  # no trainer (e.g. inference): fully on
    model._trainer = FakeTrainer()
    for step, factor in ((0, 0.0), (5, 0.25), (20, 1.0), (55, 1.0)):
        FakeTrainer.global_step = step
        assert model.warmup_factor(2) == pytest.approx(factor)
    assert model.warmup_factor(0) == 1.0


class MirrorSensitive(Baseline):
    """Logits read the image's left and right halves apart, so a mirror image gets other logits."""

    def forward(self, images):
        left, right = images[..., : images.shape[-1] // 2], images[..., images.shape[-1] // 2 :]
        return torch.stack([left.mean((1, 2, 3)), right.mean((1, 2, 3)), torch.zeros(len(images))], 1)


def test_test_time_flip_averages_probabilities_of_the_mirror_image_at_test_and_predict_only():
    image = torch.zeros(1, 3, 2, 4)
    image[..., :2] = 2.0  # left half 2, right half 0: logits (2, 0, 0); mirrored (0, 2, 0)
    model = MirrorSensitive(num_classes=3, test_time_flip=True)
    e2 = torch.e**2
    # mean of softmax(2,0,0) and softmax(0,2,0), by hand
    expected = torch.tensor([(e2 + 1) / 2, (1 + e2) / 2, 1.0]) / (e2 + 2)
    assert torch.allclose(model.evaluation_logits(image, "test").exp()[0], expected, atol=1e-6)
    assert torch.allclose(model.evaluation_logits(image, "val"), torch.tensor([[2.0, 0.0, 0.0]]))  # selection unchanged
    probs = model.predict_step({"image": image, "path": ["a.png"]}, 0)["probs"]
    assert torch.allclose(probs[0], expected, atol=1e-6)
    off = MirrorSensitive(num_classes=3)
    assert torch.allclose(off.evaluation_logits(image, "test"), torch.tensor([[2.0, 0.0, 0.0]]))


class FixedLogits(Baseline):
    """Returns the logits (2, 0, 0) whatever the image."""

    def forward(self, images):
        return torch.tensor([[2.0, 0.0, 0.0]]).expand(len(images), 3)


def test_class_prior_comes_from_training_counts_and_posthoc_adjustment_subtracts_tau_log_prior():
    model = FixedLogits(num_classes=3, logit_adjust_tau=1.0)
    assert torch.allclose(model.class_prior, torch.full((3,), 1 / 3))  # before any fit: uniform
    model.set_class_prior(torch.tensor([6.0, 3.0, 0.0]))  # an empty class counts as one sample
    assert torch.allclose(model.class_prior, torch.tensor([0.6, 0.3, 0.1]))
    image = torch.zeros(1, 3, 4, 4)
    # by hand: (2, 0, 0) - log(0.6, 0.3, 0.1) = (2.5108, 1.2040, 2.3026): the rare third class overtakes
    expected = torch.tensor([[2.0 - math.log(0.6), -math.log(0.3), -math.log(0.1)]])
    assert torch.allclose(model.evaluation_logits(image, "test"), expected, atol=1e-5)
    assert torch.allclose(model.evaluation_logits(image, "val"), torch.tensor([[2.0, 0.0, 0.0]]))  # selection unchanged
    half = FixedLogits(num_classes=3, logit_adjust_tau=0.5)
    half.set_class_prior(torch.tensor([6.0, 3.0, 1.0]))
    by_hand = torch.tensor([[2.0 - 0.5 * math.log(0.6), -0.5 * math.log(0.3), -0.5 * math.log(0.1)]])
    assert torch.allclose(half.evaluation_logits(image, "predict"), by_hand, atol=1e-5)


def test_logit_adjusted_training_loss_matches_hand_computed_balanced_softmax():
    model = FixedLogits(num_classes=3, logit_adjust_train_tau=1.0)
    model.set_class_prior(torch.tensor([6.0, 3.0, 1.0]))
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    # balanced softmax: CE(logits + log prior) = -log(0.1 / (0.6 e^2 + 0.3 + 0.1)) for label 2
    by_hand = -math.log(0.1 / (0.6 * math.e**2 + 0.3 + 0.1))
    loss = model.classification_loss(logits, {"label": torch.tensor([2])})
    assert loss.item() == pytest.approx(by_hand, rel=1e-5)
    # soft targets go through the same adjustment: 0.5/0.5 over classes 0 and 2
    soft = model.classification_loss(logits, {"label": torch.tensor([0]), "target": torch.tensor([[0.5, 0.0, 0.5]])})
    z = 0.6 * math.e**2 + 0.3 + 0.1
    assert soft.item() == pytest.approx(-0.5 * math.log(0.6 * math.e**2 / z) - 0.5 * math.log(0.1 / z), rel=1e-5)
    plain = FixedLogits(num_classes=3)
    assert plain.classification_loss(logits, {"label": torch.tensor([2])}).item() == pytest.approx(
        -math.log(1 / (math.e**2 + 2)), rel=1e-5
    )


def test_fit_records_the_training_prior_in_the_checkpointed_state(tmp_path):
    data = [{"image": torch.randn(3, 16, 16), "label": torch.tensor(0 if i < 6 else 1 + i % 2)} for i in range(12)]

    class Counts(L.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(data, batch_size=4)

        def class_counts(self, split="train"):
            return torch.bincount(torch.stack([d["label"] for d in data]), minlength=3).numpy()

    model = Baseline(num_classes=3, backbone="resnet18")
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=Counts())
    assert torch.allclose(model.class_prior, torch.tensor([0.5, 0.25, 0.25]))
    assert "class_prior" in model.state_dict()


def test_linear_probe_trains_the_head_only_and_keeps_batchnorm_statistics(tmp_path):
    torch.manual_seed(0)
    model = Baseline(num_classes=3, freeze_backbone=True, lr=0.01)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = model.head[1].weight.clone()
    data = [{"image": torch.randn(3, 32, 32), "label": torch.tensor(i % 3)} for i in range(8)]
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(data, batch_size=4))
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running statistics alike
    assert not torch.equal(head, model.head[1].weight)
    assert model.num_parameters(trainable_only=True) == 3 * 512 + 3


def test_frozen_levels_train_the_top_only_and_keep_the_bottom_with_its_statistics(tmp_path):
    torch.manual_seed(0)
    model = Baseline(num_classes=3, backbone="faceres", frozen_levels=3, lr=0.01)
    for p in model.backbone.parameters():
        p.data.normal_(0, 0.05)
    model.eval()
    images = torch.randn(2, 3, 64, 64)
    # same function as the whole network in eval mode; no parameter saved twice
    assert torch.allclose(model(images), model.head(model.backbone(images)), atol=1e-5)
    assert not any(k.startswith("_levels") for k in model.state_dict())
    bottom = [m for m, _ in model.backbone.levels()[:3]]
    top = model.backbone.levels()[3][0]
    frozen = {(i, k): v.clone() for i, m in enumerate(bottom) for k, v in m.state_dict().items()}
    trained = {k: v.clone() for k, v in top.state_dict().items()}
    data = [{"image": torch.randn(3, 64, 64), "label": torch.tensor(i % 3)} for i in range(8)]
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(data, batch_size=4))
    assert all(torch.equal(frozen[i, k], v) for i, m in enumerate(bottom) for k, v in m.state_dict().items())
    assert any(not torch.equal(trained[k], v) for k, v in top.state_dict().items())
    model.train()
    assert not any(layer.training for m in bottom for layer in m.children()) and top[0].training
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == model.num_parameters(trainable_only=True) < model.num_parameters()


@pytest.mark.parametrize("options", [{"backbone": "resnet18", "frozen_levels": 2}, {"backbone": "faceres", "frozen_levels": 5},
                                     {"backbone": "faceres", "frozen_levels": 2, "freeze_backbone": True}])
def test_frozen_levels_rejects_what_it_cannot_freeze(options):
    with pytest.raises(OptionError, match="model.frozen_levels"):
        Baseline(num_classes=3, **options)


def test_channels_last_gives_the_same_logits_and_converts_weights_and_batches():
    torch.manual_seed(0)
    model = Baseline(num_classes=3, channels_last=True).eval()
    images = torch.randn(2, 3, 32, 32)
    reference = model(images)
    model.setup("test")
    assert model.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    batch = model.on_after_batch_transfer({"image": images, "label": torch.tensor([0, 1])}, 0)
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(batch["image"]), reference, atol=1e-4)


def test_adapter_probe_trains_the_adapters_and_head_and_keeps_the_frozen_backbone(tmp_path):
    torch.manual_seed(0)
    model = Baseline(num_classes=3, backbone="mobilenetv2", freeze_backbone=True, adapter_levels=2, lr=0.01)
    model.eval()
    images = torch.randn(2, 3, 64, 64)
    # zero-initialised adapters: the probe's function at the start
    assert torch.allclose(model(images), model.head(model.backbone(images)), atol=1e-5)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    adapters = {k: v.clone() for k, v in model.tower_adapters.state_dict().items()}
    data = [{"image": torch.randn(3, 64, 64), "label": torch.tensor(i % 3)} for i in range(8)]
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(data, batch_size=4))
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())  # BN statistics too
    assert any(not torch.equal(adapters[k], v) for k, v in model.tower_adapters.state_dict().items())
    # two adapters (96 and 1280 channels, widths 96 and 128) and the head
    assert model.num_parameters(trainable_only=True) == (2 * 96 * 96 + 96 + 96) + (2 * 1280 * 128 + 128 + 1280) + 3 * 1281
    with pytest.raises(OptionError, match="model.adapter_levels=2"):
        Baseline(num_classes=3, backbone="resnet18", adapter_levels=2)
