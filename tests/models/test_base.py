import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

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
