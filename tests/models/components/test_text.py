import pytest
import torch

from fer_zoo.models.components.clip import CLIPEncoder
from fer_zoo.models.components.text import CLIPTextEncoder, article, build_text_encoder, class_prompts


@pytest.fixture(scope="module")
def tiny_clip():
    torch.manual_seed(0)
    return CLIPEncoder("FERZoo-Tiny", freeze="all")


def test_prompts_use_the_right_article():
    assert class_prompts("a photo of {article} {name} face.", ["anger", "fear"]) == [
        "a photo of an anger face.",
        "a photo of a fear face.",
    ]
    assert article("happiness") == "a"


def test_text_features_are_cached_in_memory_and_on_disk(tiny_clip, tmp_path):
    encoder = CLIPTextEncoder(tiny_clip, cache_dir=tmp_path)
    first = encoder(["a happy face", "a sad face"])
    second = encoder(["a happy face", "a sad face"])
    assert encoder.encode_calls == 1 and torch.equal(first, second)
    assert torch.allclose(first.norm(dim=-1), torch.ones(2))
    fresh = CLIPTextEncoder(tiny_clip, cache_dir=tmp_path)
    assert torch.equal(fresh(["a happy face", "a sad face"]), first) and fresh.encode_calls == 0
    assert len(list(tmp_path.glob("*.pt"))) == 1


def test_cache_is_invalidated_by_new_prompts_and_new_weights(tiny_clip, tmp_path):
    encoder = CLIPTextEncoder(tiny_clip, cache_dir=tmp_path)
    before = encoder(["a happy face"])
    encoder(["a surprised face"])
    assert encoder.encode_calls == 2
    old_key = encoder.key(["a happy face"])
    with torch.no_grad():
        tiny_clip.model.token_embedding.weight.mul_(2.0)
    try:
        encoder.invalidate()
        assert encoder.key(["a happy face"]) != old_key
        after = encoder(["a happy face"])
        assert encoder.encode_calls == 3 and not torch.allclose(before, after)
    finally:
        with torch.no_grad():
            tiny_clip.model.token_embedding.weight.div_(2.0)


def test_image_tower_weights_do_not_change_the_text_key(tiny_clip, tmp_path):
    encoder = CLIPTextEncoder(tiny_clip, cache_dir=tmp_path)
    key = encoder.key(["x"])
    with torch.no_grad():
        tiny_clip.model.visual.proj.add_(1.0)
    encoder.invalidate()
    assert encoder.key(["x"]) == key


def test_minilm_is_a_real_pretrained_sentence_encoder(tmp_path):
    encoder = build_text_encoder("minilm")
    encoder.cache_dir = tmp_path
    happy, glad, furious = encoder(["a very happy person", "a glad and joyful person", "a furious angry person"])
    assert encoder.dim == 384
    # Pretrained semantics: synonyms are closer than opposites (a random encoder fails this).
    assert float(happy @ glad) > float(happy @ furious) + 0.1


def test_unknown_text_source_is_named():
    with pytest.raises(ValueError, match="model.text_source"):
        build_text_encoder("bert")
