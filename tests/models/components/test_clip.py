import pytest
import torch

from fer_zoo.models.components.clip import CLIPEncoder
from fer_zoo.models.components.prompts import TextPromptLearner, content_mask
from fer_zoo.weights import WeightsNotFoundError


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    return CLIPEncoder("FERZoo-Tiny", freeze="all")


def test_towers_are_frozen_as_asked():
    image_frozen = CLIPEncoder("FERZoo-Tiny", freeze="image")
    trainable = {n for n, p in image_frozen.model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("visual.") for n in trainable)
    assert not any(p.requires_grad for p in CLIPEncoder("FERZoo-Tiny", freeze="all").parameters())


def test_frozen_towers_stay_in_eval_mode():
    image_frozen = CLIPEncoder("FERZoo-Tiny", freeze="image").train()
    assert not image_frozen.model.visual.training and image_frozen.model.transformer.training
    for freeze in ("all", "text", "none"):
        clip = CLIPEncoder("FERZoo-Tiny", freeze=freeze).train()
        for name, child in clip.model.named_children():
            frozen = freeze == "all" or (freeze == "text" and name != "visual")
            assert child.training is not frozen, (freeze, name)


def test_token_path_without_prompts_equals_the_pooled_image_features(tiny_clip):
    images = torch.randn(3, 3, 40, 40)
    cls, patches = tiny_clip.image_tokens(images)
    assert torch.allclose(cls, tiny_clip.encode_image(images), atol=1e-5)
    assert patches.shape == (3, 36, tiny_clip.embed_dim)  # 48 px / patch 8 after the resize


def test_deep_prompts_change_the_output_and_keep_the_token_count(tiny_clip):
    images = torch.randn(2, 3, 48, 48)
    prompts = [torch.randn(8, tiny_clip.vision_width) for _ in range(tiny_clip.vision_layers)]
    cls, patches = tiny_clip.image_tokens(images, prompts)
    assert patches.shape[1] == 36 and not torch.allclose(cls, tiny_clip.encode_image(images))


def test_coop_with_word_embeddings_as_context_reproduces_the_plain_prompt(tiny_clip):
    learner = TextPromptLearner(tiny_clip, ["happiness", "anger"], n_ctx=4)
    word_ids = tiny_clip.tokenize(["X X X X"])[0, 1:5]
    with torch.no_grad():
        learner.ctx.copy_(tiny_clip.token_embeddings(word_ids))
    soft = tiny_clip.encode_token_embeddings(learner(), learner.token_ids)
    plain = tiny_clip.encode_text(["X X X X happiness.", "X X X X anger."])
    assert torch.allclose(soft, plain, atol=1e-5)


def test_content_mask_skips_start_end_and_padding(tiny_clip):
    ids = tiny_clip.tokenize(["a b"])
    mask = content_mask(ids)[0]
    assert mask.sum() == 2 and not mask[0] and not mask[3]


def test_overlong_prompt_is_an_error(tiny_clip):
    with pytest.raises(ValueError, match="77 tokens"):
        tiny_clip.tokenize(["word " * 90])


def test_missing_weights_name_the_option():
    with pytest.raises(WeightsNotFoundError, match="model.clip_weights"):
        CLIPEncoder("FERZoo-Tiny", weights="/nonexistent/clip.safetensors")


def test_local_weights_round_trip(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    source = CLIPEncoder("FERZoo-Tiny")
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, str(tmp_path / "tiny.safetensors"))
    torch.manual_seed(2)
    loaded = CLIPEncoder("FERZoo-Tiny", weights=f"local-dir:{tmp_path}")
    images = torch.randn(1, 3, 48, 48)
    assert torch.allclose(source.encode_image(images), loaded.encode_image(images), atol=1e-6)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """An offline Hugging Face cache holding one open_clip repository, and an open_clip tag pointing at it."""
    import huggingface_hub.constants as hub_constants
    import open_clip.pretrained as pretrained
    from safetensors.torch import save_file

    cache = tmp_path / "hub"
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(pretrained._PRETRAINED, "FERZoo-Tiny", {"fake": pretrained._pcfg(hf_hub="fer-zoo/tiny-clip/")})
    torch.manual_seed(7)
    source = CLIPEncoder("FERZoo-Tiny").model.state_dict()

    def publish():
        snapshot = cache / "models--fer-zoo--tiny-clip" / "snapshots" / "0123abc"
        snapshot.mkdir(parents=True)
        (cache / "models--fer-zoo--tiny-clip" / "refs").mkdir()
        (cache / "models--fer-zoo--tiny-clip" / "refs" / "main").write_text("0123abc")
        save_file({k: v.contiguous() for k, v in source.items()}, str(snapshot / "open_clip_model.safetensors"))

    return source, publish, cache


def test_open_clip_tags_and_hub_ids_load_from_the_local_cache_offline(fake_hub):
    source, publish, _ = fake_hub
    publish()
    for spec in ("fake", "hf-hub:fer-zoo/tiny-clip"):
        loaded = CLIPEncoder("FERZoo-Tiny", weights=spec).model.state_dict()
        assert all(torch.equal(loaded[k], source[k]) for k in source), spec
        assert CLIPEncoder("FERZoo-Tiny", weights=spec).reloadable_from_spec


def test_an_uncached_tag_offline_is_one_line_naming_tag_cache_and_the_local_file_option(fake_hub):
    _, _, cache = fake_hub
    for spec in ("fake", "hf-hub:fer-zoo/tiny-clip"):
        with pytest.raises(WeightsNotFoundError) as info:
            CLIPEncoder("FERZoo-Tiny", weights=spec)
        message = str(info.value)
        assert "\n" not in message and spec in message and str(cache) in message
        assert "--model.clip_weights /path/to/" in message
