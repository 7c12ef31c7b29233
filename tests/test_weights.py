import pytest
import torch
from torch import nn

from fer_zoo import weights
from fer_zoo.models.components.backbones import build_backbone


def test_specs_resolve(tmp_path):
    assert weights.resolve(None) is None and weights.resolve("none") is None
    net = nn.Linear(3, 2)
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}, tmp_path / "w.pt")
    assert weights.resolve(str(tmp_path / "w.pt")) == tmp_path / "w.pt"
    assert weights.resolve(f"local-dir:{tmp_path}") == tmp_path / "w.pt"
    fresh = nn.Linear(3, 2)
    assert weights.load_into(fresh, f"local-dir:{tmp_path}") == []
    assert torch.equal(fresh.weight, net.weight)


def test_offline_tag_error_names_path_and_override(monkeypatch):
    monkeypatch.setenv("FER_ZOO_OFFLINE", "1")
    with pytest.raises(weights.WeightsNotFoundError, match=r"resnet18-f37072fd.pth.*local-dir"):
        weights.resolve("resnet18.tv_in1k", option="model.weights")
    with pytest.raises(weights.WeightsNotFoundError, match="not a file"):
        weights.resolve("/no/such/file.pt")


def test_backbone_loads_local_weights_and_skips_head(tmp_path):
    from torchvision.models import resnet18

    source = resnet18(num_classes=1000)
    from safetensors.torch import save_file

    save_file(source.state_dict(), str(tmp_path / "r18.safetensors"))
    net, dim = build_backbone("resnet18", str(tmp_path / "r18.safetensors"))
    assert dim == 512 and torch.equal(net.conv1.weight, source.conv1.weight)
    from fer_zoo.errors import OptionError, input_error_message

    with pytest.raises(OptionError, match="model.weights=.*r18.safetensors: no parameter") as error:
        weights.load_into(nn.Linear(2, 2), str(tmp_path / "r18.safetensors"), option="model.weights")
    lines = input_error_message(error.value, "fit").splitlines()  # what fer-zoo prints: the file, then what to do
    assert len(lines) == 2 and "r18.safetensors" in lines[0] and lines[1].startswith("give model.weights weights")
