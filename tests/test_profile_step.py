"""benchmarks.profile_step: forward time charged once to each top-level module, and the report's shares."""

from __future__ import annotations

import pytest
from torch import Tensor, nn

from benchmarks.profile_step import ForwardClock, row_table


class FakeClock:
    """A clock the modules below advance by known amounts."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Costly(nn.Module):
    """Advances the clock by ``cost`` and then runs ``inner`` (if any)."""

    def __init__(self, clock: FakeClock, cost: float, inner: nn.Module | None = None) -> None:
        super().__init__()
        self.clock, self.cost, self.inner = clock, cost, inner

    def forward(self, x: Tensor) -> Tensor:
        self.clock.now += self.cost
        return self.inner(x) if self.inner is not None else x

    def helper(self, x: Tensor) -> Tensor:
        """A method that bypasses this module's forward and calls its child directly."""
        return self.inner(x)


class Model(nn.Module):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.outer = Costly(clock, 3.0, inner=Costly(clock, 2.0))
        self.side = Costly(clock, 1.0, inner=Costly(clock, 4.0))
        self.blocks = nn.ModuleList([Costly(clock, 0.5), Costly(clock, 0.25)])

    def forward(self, x: Tensor) -> Tensor:
        self.clock.now += 10.0  # glue: no module call covers it
        x = self.side.helper(self.outer(x))
        for block in self.blocks:
            x = block(x)
        return x


def test_forward_time_is_charged_once_to_the_top_level_module():
    clock = FakeClock()
    model = Model(clock)
    forward_clock = ForwardClock(model, clock)
    model(0)
    # outer: its own 3 + its child's 2, not counted twice; side: only the child its helper called (4);
    # blocks: both list members (0.5 + 0.25); the model's own 10 is nobody's
    assert dict(forward_clock.seconds) == {"outer": 5.0, "side": 4.0, "blocks": 0.75}
    model(0)
    assert forward_clock.seconds["outer"] == 10.0
    forward_clock.reset()
    model(0)
    assert dict(forward_clock.seconds) == {"outer": 5.0, "side": 4.0, "blocks": 0.75}
    forward_clock.remove()
    model(0)
    assert forward_clock.seconds["outer"] == 5.0


def test_row_table_gives_each_part_its_share_of_the_whole_step():
    result = {"parts": {"backbone": 0.5, "head": 0.1}, "glue": 0.4, "forward": 1.0, "backward": 2.5,
              "optimizer": 0.5, "img_per_s": 16.0, "batch": 64, "channels_last": True}
    lines = row_table("row", result)
    assert "4.00 s a step, 16.0 img/s" in lines[2]
    assert "| backbone | 0.500 | 12.5 % |" in lines
    assert "| head | 0.100 | 2.5 % |" in lines
    assert "| (glue: the method's own tensor code) | 0.400 | 10.0 % |" in lines
    assert "| backward (all parts) | 2.500 | 62.5 % |" in lines
    assert "| optimiser step | 0.500 | 12.5 % |" in lines
    shares = [float(line.split("|")[3].strip(" %")) for line in lines if line.startswith("| ") and "%" in line]
    assert sum(shares) == pytest.approx(100.0)
