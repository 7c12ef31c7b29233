import pytest
import torch

from fer_zoo.models import MPAFace
from fer_zoo.models.mpa import global_local_logits

NAMES = ["happiness", "neutral", "anger"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MPAFace(num_classes=3, class_names=NAMES, weights=None, n_ctx=4)


def test_only_the_prompts_adapter_and_projection_train(model):
    trainable = {n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("text.") else "")
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"visual_prompts", "project", "text.context"}
    model.train()
    assert not model.image.training and not model.text.model.training and model.visual_prompts.training


def test_soft_prompt_puts_the_context_after_cls_and_keeps_the_class_name(model):
    embeddings = model.text.soft_embeddings()
    assert torch.equal(embeddings[:, 1:5], model.text.context.unsqueeze(0).expand(3, -1, -1))
    words = model.text.model.embeddings.word_embeddings(model.text.token_ids)
    assert torch.equal(embeddings[:, 0], words[:, 0]) and torch.equal(embeddings[:, 5:], words[:, 5:])
    ids = model.text.token_ids[0][model.text.attention_mask[0].bool()].tolist()
    assert model.text.tokenizer.decode(ids[5:-1]) == "happiness" and ids[0] == model.text.tokenizer.cls_token_id


def test_adapter_starts_as_identity_and_logits_are_cgla_of_the_projected_map(model):
    torch.manual_seed(1)
    images = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        fmap = model.image.feature_map(images)
        pooled, cls, patches = model.image_features(images)
        assert torch.allclose(pooled, fmap.mean((2, 3)), atol=1e-5)  # zero-initialised adapter
        expected = global_local_logits(model.project(fmap.mean((2, 3))), model.project(fmap.flatten(2).transpose(1, 2)),
                                       model.text()[0], model.hparams.top_k, model.hparams.logit_scale)
        assert torch.allclose(model(images), expected, atol=1e-4)
    model.train()


def test_loss_is_the_weighted_sum_and_reaches_the_context(model):
    model.prototypes.normal_()
    batch = {"image": torch.randn(4, 3, 64, 64), "label": torch.tensor([0, 1, 2, 0])}
    loss, logits, extra = model.training_loss(batch)
    by_hand = extra["loss_vt"] + 1.0 * (extra["loss_ta"] + extra["loss_pa"]) + 1.0 * extra["loss_v"]
    assert torch.allclose(loss.detach(), by_hand) and logits.shape == (4, 3)
    model.zero_grad()
    loss.backward()
    assert model.text.context.grad.abs().sum() > 0 and model.project.weight.grad.abs().sum() > 0


def test_checkpoints_leave_out_the_frozen_minilm(model):
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    assert not any(k.startswith("text.model.") and "weight" in k for k in checkpoint["state_dict"])
    assert "text.context" in checkpoint["state_dict"]


def test_the_image_tower_can_be_any_imported_network_with_a_map_and_nothing_else():
    torch.manual_seed(0)
    model = MPAFace(num_classes=3, class_names=NAMES, backbone="mobilenetv2", weights=None, n_ctx=2).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled, _, patches = model.image_features(images)
        assert torch.allclose(pooled, model.image(images), atol=1e-5)  # the zero adapter keeps the pooled feature
    assert pooled.shape == (2, 1280) and patches.shape == (2, 4, 384)  # 64 px: a 2 x 2 map in the text space
    with pytest.raises(ValueError, match="model.backbone='resnet18' gives no feature map"):
        MPAFace(num_classes=3, class_names=NAMES, backbone="resnet18")


def test_adapter_levels_counts_levels_from_the_last_and_is_checked():
    model = MPAFace(num_classes=3, class_names=NAMES, backbone="mobilenetv2", weights=None, n_ctx=2, adapter_levels=3)
    # MobileNetV2's levels end in 16, 24, 32, 96 and 1280 channels: levels 3 and 4 adapt 32 and 96 channels
    assert [a[0].in_channels for a in model.visual_prompts.adapters] == [32, 96, 1280]
    assert [a[0].out_channels for a in model.visual_prompts.adapters] == [32, 96, 128]  # width capped at the channels
    blocks = MPAFace(num_classes=3, class_names=NAMES, backbone="mobilenetv2", weights=None, n_ctx=2, adapter_levels=2,
                     adapter_every_block=True)
    # the last two levels are features[7:14] (64, 64, 64, 64, 96, 96, 96 channels) and features[14:19]
    assert [a[0].in_channels for a in blocks.visual_prompts.adapters] == [64] * 4 + [96] * 3 + [160] * 3 + [320, 1280]
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(blocks.eval().visual_prompts(images), blocks.image.feature_map(images), atol=1e-5)
    with pytest.raises(ValueError, match="model.adapter_levels=6"):
        MPAFace(num_classes=3, class_names=NAMES, backbone="mobilenetv2", adapter_levels=6)


def test_checkpoints_with_the_earlier_adapter_names_load():
    torch.manual_seed(0)
    model = MPAFace(num_classes=3, class_names=NAMES, backbone="mobilenetv2", weights=None, n_ctx=2, adapter_levels=2)
    for p in model.visual_prompts.parameters():
        torch.nn.init.normal_(p)
    state = model.state_dict()
    old = {}  # the names written before TowerAdapters: adapter (stride 32) and level_adapters.<i>
    for key, value in state.items():
        key = key.replace("visual_prompts.adapters.1.", "adapter.").replace("visual_prompts.adapters.", "level_adapters.")
        old[key] = value
    assert "adapter.0.weight" in old and "level_adapters.0.2.bias" in old
    fresh = MPAFace(num_classes=3, class_names=NAMES, backbone="mobilenetv2", weights=None, n_ctx=2, adapter_levels=2)
    checkpoint = {"state_dict": old}
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    for key, value in state.items():
        assert torch.equal(fresh.state_dict()[key], value), key
