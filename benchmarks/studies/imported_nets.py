"""Check imported ImageNet networks on real face crops: do their BatchNorm statistics match the data they now see?

A network rebuilt with the wrong padding, layout or input normalisation feeds its BatchNorm layers activations
whose per-channel means no longer follow the stored running means. For every BatchNorm layer this script takes
the per-channel mean of its input over a batch of real FERPlus test faces and correlates it with the layer's
``running_mean`` (Pearson r across channels); it reports the median r over layers, for the network as imported and,
as a control, with a deliberately wrong input range. Usage::

    python -m benchmarks.studies.imported_nets --data-root ../shared/data/ferplus --out benchmarks/results/imported_nets/ferplus.md
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from benchmarks.publish import finish_report
from fer_zoo.models.components.backbones import build_backbone

NETS = {"mobilenetv2": "mobilenetv2.in1k", "efficientnet_lite0": "efficientnet_lite0.in1k"}


def bn_agreement(net: nn.Module, images: torch.Tensor) -> tuple[float, float, float]:
    """(median channel correlation over BatchNorm layers, stem deviation, median deviation).

    Correlation: Pearson r across channels between a layer's input means and its running means. Deviation: mean over
    channels of ``|input mean - running mean| / sqrt(running var)``, in running standard deviations (0 = the
    statistics the weights were trained with).
    """
    rs: list[float] = []
    devs: list[float] = []

    def hook(module: nn.BatchNorm2d, inputs: tuple[torch.Tensor], _: torch.Tensor) -> None:
        mean = inputs[0].mean((0, 2, 3))
        rs.append(float(torch.corrcoef(torch.stack([mean, module.running_mean]))[0, 1]))
        devs.append(float(((mean - module.running_mean).abs() / (module.running_var + module.eps).sqrt()).mean()))

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        net.eval()(images)
    for h in handles:
        h.remove()
    return float(torch.tensor(rs).nanmedian()), devs[0], float(torch.tensor(devs).median())


def faces(root: str, n: int, size: int) -> torch.Tensor:
    """``n`` FERPlus test faces, ImageNet-normalised at ``size`` px (the zoo's evaluation transform)."""
    from fer_zoo.datamodules import FERPlusDataModule

    dm = FERPlusDataModule(root=root, image_size=size, batch_size=n, num_workers=0)
    dm.setup("test")
    return next(iter(dm.test_dataloader()))["image"]


def main(argv: list[str] | None = None) -> None:
    """Score each imported network and write the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/data/ferplus")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--out", default=None)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    images = faces(args.data_root, args.images, args.size)
    lines = ["# Imported ImageNet networks: BatchNorm agreement on real faces", "",
             f"{args.images} FERPlus test faces at {args.size} px. r: median over BatchNorm layers of the correlation "
             "(across channels) between each layer's input mean and its stored running mean; 1 = the statistics the "
             "weights were trained with. Control: the same network fed raw 0..1 pixels (no normalisation).",
             "Deviation: mean over channels of |input mean - running mean| in running standard deviations.", "",
             "| network | tag | BatchNorm layers | r | stem deviation | median deviation | control: r / stem / median |",
             "|---|---|---|---|---|---|---|"]
    for name, tag in NETS.items():
        net, _ = build_backbone(name, tag)
        n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
        good = bn_agreement(net, images)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        wrong = bn_agreement(net, images * std + mean)  # 0..1 pixels where ImageNet-normalised ones belong
        lines.append(f"| {name} | `{tag}` | {n_bn} | {good[0]:.3f} | {good[1]:.2f} | {good[2]:.2f} | "
                     f"{wrong[0]:.3f} / {wrong[1]:.2f} / {wrong[2]:.2f} |")
        print(lines[-1], flush=True)
    finish_report(lines, "benchmarks.studies.imported_nets", argv, args.out)


if __name__ == "__main__":
    main()
