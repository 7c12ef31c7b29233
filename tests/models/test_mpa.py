import math

import numpy as np
import pytest
import torch

from fer_zoo.models import MPA
from fer_zoo.models.components import prototypes as proto
from fer_zoo.models.mpa import class_contrastive, global_local_logits, prompt_alignment_l1, visual_alignment

NAMES = ["happiness", "neutral", "anger"]


@pytest.fixture(scope="module")
def tiny_mpa():
    torch.manual_seed(0)
    return MPA(num_classes=3, class_names=NAMES, clip_arch="FERZoo-Tiny")


def test_gradients_reach_only_the_prompts(tiny_mpa):
    tiny_mpa.zero_grad(set_to_none=True)
    tiny_mpa.prototypes.copy_(torch.randn_like(tiny_mpa.prototypes))
    batch = {"image": torch.randn(4, 3, 48, 48), "label": torch.tensor([0, 1, 2, 0])}
    loss, logits, extra = tiny_mpa.training_loss(batch)
    loss.backward()
    with_grad = {n for n, p in tiny_mpa.named_parameters() if p.grad is not None}
    assert with_grad == {"text_prompts.ctx", "visual_prompts.prompts"}
    assert set(extra) == {"loss_vt", "loss_ta", "loss_pa", "loss_v"} and logits.shape == (4, 3)
    # M = 10 context vectors of the text width, N_p = 8 tokens in each of the 2 blocks.
    assert tiny_mpa.num_parameters(trainable_only=True) == 10 * 64 + 2 * 8 * 64


def test_frozen_clip_stays_in_eval_mode_while_training(tiny_mpa):
    from fer_zoo.models import CLIPLinearProbe, CLIPZeroShot

    models = [tiny_mpa] + [cls(num_classes=3, class_names=NAMES, clip_arch="FERZoo-Tiny") for cls in (CLIPLinearProbe, CLIPZeroShot)]
    for model in models:
        model.train()
        assert model.training and not any(m.training for m in model.clip.model.modules()), type(model).__name__
    assert tiny_mpa.visual_prompts.training and tiny_mpa.text_prompts.training


def test_frozen_clip_is_in_eval_mode_inside_a_real_fit_step(tmp_path):
    """Lightning's fit does not call .train(): the towers must be in eval mode from construction."""
    import lightning as L
    from torch.utils.data import DataLoader

    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(any(m.training for m in pl_module.clip.model.modules()))

    torch.manual_seed(0)
    model = MPA(num_classes=3, class_names=NAMES, clip_arch="FERZoo-Tiny")
    data = [{"image": torch.randn(3, 32, 32), "label": torch.tensor(i % 3)} for i in range(4)]
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
                        default_root_dir=tmp_path, limit_val_batches=0)
    model.on_fit_start = lambda: None  # prototypes need a data module; not what this test is about
    trainer.fit(model, DataLoader(data, batch_size=2))
    assert seen == [False, False]


def test_hard_prompts_hold_name_and_description(tiny_mpa):
    assert tiny_mpa.hard_prompts[0].startswith("a photo of a person making a facial expression of happiness. raised")


def test_global_local_logits_known_answer():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    cls = torch.tensor([[2.0, 0.0]])  # cos = (1, 0)
    patches = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # cos to class 0: 1, 0, c; class 1: 0, 1, c
    c = 1 / math.sqrt(2)
    logits = global_local_logits(cls, patches, text, top_k=2, scale=10.0)
    assert torch.allclose(logits, torch.tensor([[10 * (1 + (1 + c) / 2), 10 * (0 + (1 + c) / 2)]]))


def test_alignment_losses_known_answers():
    eye = torch.eye(3)
    expected = -math.log(math.exp(1 / 0.5) / (math.exp(1 / 0.5) + 2))
    assert class_contrastive(eye, eye, 0.5).item() == pytest.approx(expected, rel=1e-5)
    assert prompt_alignment_l1(eye, 2 * eye).item() == 0.0
    # per-class L1 norm averaged over classes: |e_c - (-e_c)|_1 = 2 for every class
    assert prompt_alignment_l1(eye, -eye).item() == pytest.approx(2.0)
    soft, hard = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert prompt_alignment_l1(soft, hard).item() == pytest.approx((2.0 + 0.0) / 2)
    # not divided by the embedding size: two 512-d unit vectors differing in one coordinate pair
    a, b = torch.zeros(1, 512), torch.zeros(1, 512)
    a[0, 0], b[0, 1] = 1.0, 1.0
    assert prompt_alignment_l1(a, b).item() == pytest.approx(2.0)
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert visual_alignment(torch.tensor([[3.0, 0.0]]), protos, torch.tensor([0])).item() == pytest.approx(0.0)
    assert visual_alignment(torch.tensor([[-1.0, 0.0]]), protos, torch.tensor([0])).item() == pytest.approx(2.0)
    l1 = visual_alignment(torch.tensor([[0.0, 5.0], [3.0, 0.0]]), protos, torch.tensor([0, 0]), kind="l1")
    assert l1.item() == pytest.approx((2.0 + 0.0) / 2)


def test_too_long_description_is_an_error(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("happiness: " + "smile " * 80 + "\nneutral: calm\nanger: frown\n")
    with pytest.raises(ValueError, match="77 tokens"):
        MPA(num_classes=3, class_names=NAMES, clip_arch="FERZoo-Tiny", descriptions=str(path))


def test_missing_description_is_named(tmp_path):
    path = tmp_path / "short.yaml"
    path.write_text("happiness: smile\n")
    with pytest.raises(ValueError, match="neutral"):
        MPA(num_classes=3, class_names=NAMES, clip_arch="FERZoo-Tiny", descriptions=str(path))


class _Images(torch.utils.data.Dataset):
    def __init__(self, values, labels):
        self.values, self.labels = values, np.asarray(labels)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": torch.full((1, 2, 2), float(self.values[i])), "label": int(self.labels[i])}


def test_class_sums_and_subsets_give_the_class_means():
    data = _Images([1, 3, 10, 20, 30], [0, 0, 1, 1, 1])
    sums, counts = proto.class_sums(lambda x: x.flatten(1).mean(1, keepdim=True), data, np.arange(5), 2, 2)
    assert torch.allclose(sums / counts.unsqueeze(1), torch.tensor([[2.0], [20.0]]))
    subset = proto.select_subset(data.labels, per_class=1)
    assert len(subset) == 2 and set(data.labels[subset]) == {0, 1}


def test_prototype_cache_round_trip():
    key = proto.prototype_key("fingerprint", np.arange(3))
    assert proto.load_cached(key) is None
    proto.save_cached(key, torch.ones(2, 3))
    assert torch.equal(proto.load_cached(key), torch.ones(2, 3))
    assert proto.prototype_key("fingerprint", np.arange(4)) != key
