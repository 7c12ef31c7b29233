"""The frozen-feature linear probe (benchmarks/probe.py): the head against hand-derived optima, and a whole run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from benchmarks.probe import fit_logistic, main, probe


def test_uninformative_features_give_the_target_prior() -> None:
    # x = 0 carries nothing: the optimum has W = 0 and softmax(b) equal to the mean target distribution
    targets = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2], [0.2, 0.2, 0.6]])
    weight, bias = fit_logistic(torch.zeros(4, 5), targets, l2=1e-3)
    assert torch.allclose(weight, torch.zeros_like(weight))
    assert torch.allclose(torch.softmax(bias, 0), targets.mean(0).double(), atol=1e-6)


def test_separable_two_class_optimum() -> None:
    # x = +1 is class 1, x = -1 class 0. By symmetry b = 0 and W = [[-w], [w]]; the objective
    # log(1 + exp(-2w)) + l2 * w**2 is stationary where l2 * w = sigmoid(-2w).
    l2 = 0.1
    x = torch.tensor([[1.0], [-1.0]])
    targets = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    weight, bias = fit_logistic(x, targets, l2)
    lo, hi = 0.0, 10.0
    for _ in range(100):  # bisection on the stationarity condition
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if l2 * mid < 1 / (1 + math.exp(2 * mid)) else (lo, mid)
    assert abs(weight[1, 0].item() - lo) < 1e-6 and abs(weight[0, 0].item() + lo) < 1e-6
    assert torch.allclose(bias, torch.zeros_like(bias), atol=1e-7)


def test_l2_is_chosen_on_validation_never_on_test() -> None:
    # train and val agree (feature 0 decides the class); test has the classes flipped. Selection must follow
    # val (a weak L2 wins it) and the test score of the chosen head is then poor, not the best over the grid.
    g = torch.Generator().manual_seed(0)

    def split(n: int, flip: bool) -> dict[str, torch.Tensor]:
        y = torch.arange(n) % 2
        x = torch.randn(n, 3, generator=g) * 0.3
        x[:, 0] += (1 - 2 * y) * (-1 if flip else 1)
        return {"x": x, "y": y, "t": torch.nn.functional.one_hot(y, 2).float()}

    features = {"train": split(64, False), "val": split(32, False), "test": split(32, True)}
    result = probe(features, grid=(1e-4, 1e3))
    assert result["l2"] == 1e-4 and result["val_acc"] == 1.0
    assert result["test"]["acc"] < 0.1
    assert [s["l2"] for s in result["sweep"]] == [1e-4, 1e3]


def test_probe_run_on_ferplus_layout(ferplus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe.md"
    text = main(["--data-root", str(ferplus_root), "--rows", "probe-random", "--cache", str(tmp_path / "cache"),
                 "--out", str(out)])
    assert "| probe-random | faceres (random init) | 112 |" in text and out.read_text() == text
    record = json.loads(out.with_suffix(".json").read_text())[0]
    test = record["test"]
    assert sum(map(sum, test["confusion"])) == len(torch.load(tmp_path / "cache" / "ferplus" / "probe-random.pt")
                                                     ["test"]["y"])
    assert 0.0 <= test["acc"] <= 1.0 and len(test["per_class_acc"]) == len(record["classes"])
    # a second run reads the cached features and gives the same figures
    assert main(["--data-root", str(ferplus_root), "--rows", "probe-random", "--cache", str(tmp_path / "cache")]) \
        .split("Command:")[0] == text.split("Command:")[0]


def test_balanced_softmax_offset_divides_out_the_prior() -> None:
    # x = 0: softmax(b + offset) must equal the mean target p, so b = log p - log q (+ a constant) for offset log q
    targets = torch.tensor([[1.0, 0.0, 0.0]] * 6 + [[0.0, 1.0, 0.0]] * 3 + [[0.0, 0.0, 1.0]])
    prior = torch.tensor([0.6, 0.3, 0.1])
    _, bias = fit_logistic(torch.zeros(10, 2), targets, l2=1e-3, offset=prior.log())
    # mean target = prior here, so the balanced head is uniform: every class gets the same bias
    assert torch.allclose(bias - bias.mean(), torch.zeros(3, dtype=bias.dtype), atol=1e-6)
    _, bias = fit_logistic(torch.zeros(10, 2), targets, l2=1e-3, offset=torch.tensor([0.5, 0.3, 0.2]).log())
    expected = torch.log(prior / torch.tensor([0.5, 0.3, 0.2])).double()
    assert torch.allclose(bias - bias.mean(), expected - expected.mean(), atol=1e-6)
