"""Residual adapters on a frozen CNN tower: VPT-deep's per-layer visual prompts read onto convolutional networks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fer_zoo.errors import OptionError


def residual_adapter(channels: int, width: int) -> nn.Sequential:
    """A 1x1 bottleneck ``channels -> min(width, channels) -> channels`` whose last layer starts at zero."""
    width = min(width, channels)
    adapter = nn.Sequential(nn.Conv2d(channels, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, channels, 1))
    nn.init.zeros_(adapter[2].weight)
    nn.init.zeros_(adapter[2].bias)
    return adapter


def adapter_sites(tower: nn.Module, levels: int, every_block: bool) -> tuple[list[nn.Module], list[int]]:
    """The tower as a chain of modules, and the channels each one's adapter sees (0: the module has none).

    Args:
        tower: a network with ``levels()`` (one of
            :data:`~fer_zoo.models.components.backbones.PYRAMID_BACKBONES`): five modules at strides 2 to 32.
        levels: how many levels, counted from the last, are adapted (1-5).
        every_block: one site per module of an adapted level (their output channels read off one small forward
            pass) instead of one per level.

    Raises:
        OptionError: ``levels`` outside 1-5.
    """
    if not 1 <= levels <= 5:
        raise OptionError(f"model.adapter_levels={levels}: takes 1 (the stride-32 map) to 5 (every level)")
    cut = tower.levels()
    sites: list[nn.Module] = [module for module, _ in cut[: 5 - levels]]
    channels = [0] * len(sites)
    if not every_block:
        return sites + [module for module, _ in cut[5 - levels :]], channels + [c for _, c in cut[5 - levels :]]
    was_training = tower.training
    tower.eval()
    with torch.no_grad():
        x = torch.zeros(1, 3, 112, 112)
        for module in sites:
            x = module(x)
        for level, _ in cut[5 - levels :]:
            for block in level:
                x = block(x)
                sites.append(block)
                channels.append(x.shape[1])
    tower.train(was_training)
    return sites, channels


class TowerAdapters(nn.Module):
    """Zero-initialised residual adapters after the last levels (or every block of them) of a tower.

    The adapters start as the identity, so training starts from the tower's own feature map. The tower is not
    registered here (its owner holds it); the sites are a plain list sharing its modules, so nothing is saved twice.
    """

    def __init__(self, tower: nn.Module, levels: int = 1, every_block: bool = False, width: int = 128,
                 train_tower: bool = False) -> None:
        """Cut the tower into sites and create one adapter per adapted site.

        Args:
            tower: see :func:`adapter_sites`.
            levels: adapted levels, counted from the last (1: the stride-32 map only; 5: every level).
            every_block: an adapter after every block of the adapted levels.
            width: bottleneck width (capped at a site's channels).
            train_tower: the tower trains too, so the graph is kept through its first unadapted levels.
        """
        super().__init__()
        self._sites, channels = adapter_sites(tower, levels, every_block)
        self.adapters = nn.ModuleList(residual_adapter(c, width) for c in channels if c)
        self.train_tower = train_tower

    def forward(self, images: Tensor) -> Tensor:
        """The tower's last feature map with each adapted site's output passed through its adapter."""
        first = len(self._sites) - len(self.adapters)
        # A frozen tower needs no graph up to the first adapter: nothing before it trains.
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_tower):
            x = images
            for site in self._sites[: first + 1]:
                x = site(x)
        x = x + self.adapters[0](x)
        for site, adapter in zip(self._sites[first + 1 :], self.adapters[1:]):
            x = site(x)
            x = x + adapter(x)
        return x
