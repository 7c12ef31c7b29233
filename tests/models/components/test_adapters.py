import pytest
import torch

from fer_zoo.errors import OptionError
from fer_zoo.models.components.adapters import TowerAdapters, residual_adapter
from fer_zoo.models.components.backbones import build_backbone


def test_residual_adapter_caps_its_width_and_starts_at_zero():
    adapter = residual_adapter(32, 128)
    assert adapter[0].out_channels == 32 and adapter[2].in_channels == 32
    x = torch.randn(2, 32, 4, 4)
    assert torch.equal(adapter(x), torch.zeros_like(x))


@pytest.mark.parametrize(("backbone", "every_block", "sites"),
                         [("faceres", False, 5), ("mobilenetv2", False, 5), ("efficientnet_lite0", False, 5),
                          ("faceres", True, 2 + 2 * 13), ("mobilenetv2", True, 19)])
def test_adapters_start_as_the_frozen_map_and_only_they_train(backbone, every_block, sites):
    torch.manual_seed(0)
    tower, _ = build_backbone(backbone, None)
    tower.requires_grad_(False).eval()
    adapters = TowerAdapters(tower, levels=5, every_block=every_block, width=16)
    # FaceRes: input adapter, conv1 and each block's depthwise and pointwise convs; MobileNetV2: its 19 features
    assert len(adapters.adapters) == sites
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(adapters(images), tower.feature_map(images), atol=1e-5)
    for adapter in adapters.adapters:  # leave the identity so gradients reach every site
        torch.nn.init.normal_(adapter[2].weight, std=0.01)
    adapters(images).square().mean().backward()
    assert all(a[0].weight.grad.abs().sum() > 0 for a in adapters.adapters)
    assert all(p.grad is None for p in tower.parameters())
    assert not any("_sites" in k for k in adapters.state_dict())  # the tower is its owner's, not saved here


def test_a_frozen_tower_builds_no_graph_before_the_first_adapter():
    tower, _ = build_backbone("mobilenetv2", None)
    tower.requires_grad_(False).eval()
    adapters = TowerAdapters(tower, levels=2)
    seen = []
    first_unadapted = adapters._sites[0]
    first_unadapted.register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    assert adapters(torch.randn(1, 3, 64, 64)).requires_grad and seen == [False]


def test_levels_are_checked():
    tower, _ = build_backbone("mobilenetv2", None)
    with pytest.raises(OptionError, match="model.adapter_levels=0"):
        TowerAdapters(tower, levels=0)
