"""fer_zoo.rebalance: head re-balancing against hand-computed values, and ``fer-zoo rebalance`` end to end."""

import json

import pytest
import torch
from torch import nn

from fer_zoo.rebalance import adjusted_scores, choose_tau, linear_head, parse_l2, rebalance, tau_normalised


def test_logit_adjustment_scores_and_tau_choice_by_hand():
    # two classes, prior (0.8, 0.2): log-prior gap log(4) = 1.386
    log_prior = torch.log(torch.tensor([0.8, 0.2]))
    logits = torch.tensor([[1.0, 0.0], [0.5, 0.0], [2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([1, 1, 0, 1])
    plain = adjusted_scores(logits, labels, log_prior, 0.0)
    assert plain["acc"] == pytest.approx(0.5) and plain["per_class_acc"] == pytest.approx([1.0, 1 / 3])
    # tau = 1: margins shift by 1.386, so samples 0 (1.0) and 1 (0.5) flip to class 1; sample 2 (2.0) stays 0
    adjusted = adjusted_scores(logits, labels, log_prior, 1.0)
    assert adjusted["acc"] == pytest.approx(1.0) and adjusted["mca"] == pytest.approx(1.0)
    val = {0.0: {"acc": 0.80, "mca": 0.50}, 0.5: {"acc": 0.79, "mca": 0.60}, 1.0: {"acc": 0.70, "mca": 0.75}}
    assert choose_tau(val, max_oa_drop=1.5) == 0.5  # tau 1.0 costs 10 points of validation OA
    assert choose_tau(val, max_oa_drop=15.0) == 1.0
    # a balanced-softmax model is held to the plain baseline's OA (0.80): adding the prior back (tau < 0) is needed
    balanced = {-1.0: {"acc": 0.80, "mca": 0.60}, -0.5: {"acc": 0.79, "mca": 0.66}, 0.0: {"acc": 0.60, "mca": 0.70}}
    assert choose_tau(balanced, max_oa_drop=1.5) == 0.0  # its own OA as the reference
    assert choose_tau(balanced, max_oa_drop=1.5, reference_oa=0.80) == -0.5
    assert choose_tau(balanced, max_oa_drop=1.5, reference_oa=0.95) == -1.0  # none reaches the floor: best OA


def test_tau_normalisation_by_hand():
    weight = torch.tensor([[3.0, 4.0], [0.6, 0.8]])  # row norms 5 and 1
    assert torch.allclose(tau_normalised(weight, 0.0), weight)
    assert torch.allclose(tau_normalised(weight, 1.0), torch.tensor([[0.6, 0.8], [0.6, 0.8]]))
    assert torch.allclose(tau_normalised(weight, 0.5)[0], torch.tensor([3.0, 4.0]) / 5**0.5)


def test_crt_head_on_separable_features_gives_the_rare_class_its_share():
    """Features that separate a 5 %-class perfectly: the balanced-softmax head (tau 0) recalls it fully, and the
    validation rule keeps OA at the fitted head's level while raising MCA."""
    n_rare, n_common = 10, 190

    def split(seed):
        g = torch.Generator().manual_seed(seed)
        y = torch.cat([torch.ones(n_rare, dtype=torch.long), torch.zeros(n_common, dtype=torch.long)])
        x = torch.randn(len(y), 2, generator=g) * 0.3 + torch.stack([y.float() * 2.0, torch.zeros(len(y))], 1)
        return {"x": x, "y": y, "t": nn.functional.one_hot(y, 2).float()}

    feats = {"train": split(0), "val": split(1), "test": split(2)}
    weight, bias = torch.tensor([[0.0, 0.0], [0.1, 0.0]]), torch.tensor([0.0, -5.0])  # a head that never says rare
    for s in feats.values():
        s["z"] = s["x"] @ weight.T + bias
    log_prior = torch.tensor([n_common, n_rare], dtype=torch.float).div(n_common + n_rare).log()
    out = rebalance(feats, weight, bias, log_prior, max_oa_drop=1.5, l2_grid=(1e-3,))
    assert out["plain"]["test"]["per_class_acc"][1] == 0.0 and out["plain"]["test"]["acc"] == pytest.approx(0.95)
    assert out["crt"]["test"]["per_class_acc"][1] == pytest.approx(1.0)
    assert out["crt"]["val"]["acc"] >= out["reference_val_oa"] - 0.015
    assert out["crt"]["val"]["mca"] > out["plain"]["val"]["mca"] + 0.4  # 0.5 (rare never said) -> about 1.0
    w, b = out["crt"]["head"]  # the standardisation is folded in: raw features give the reported logits
    logits = feats["test"]["x"] @ w.T + b - out["crt"]["tau"] * log_prior
    assert adjusted_scores(logits, feats["test"]["y"], log_prior, 0.0)["acc"] == out["crt"]["test"]["acc"]


def test_linear_head_and_l2_grid_errors_name_the_problem():
    with pytest.raises(ValueError, match="no linear `head`"):
        linear_head(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(SystemExit, match="--l2 'a,1': expected comma-separated numbers"):
        parse_l2("a,1")
    with pytest.raises(SystemExit, match="must be >= 0"):
        parse_l2("-1")


def test_la_nets_classifier_is_found_and_its_captured_features_give_its_logits():
    """LA-Net names its classifier ``fer_fc``; re-balancing reads that layer's inputs and must reproduce the logits."""
    from fer_zoo.models import LANet
    from fer_zoo.rebalance import head_inputs

    torch.manual_seed(0)
    task = LANet(num_classes=3, class_names=["a", "b", "c"], queue_size=16, knn=3).eval()
    prefix, linear = linear_head(task)
    assert prefix == "fer_fc" and linear is task.fer_fc and f"{prefix}.weight" in task.state_dict()
    loader = [{"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 0])}]
    feats = head_inputs(task, linear, loader, 3)
    assert torch.allclose(feats["x"] @ linear.weight.T + linear.bias, feats["z"], atol=1e-5)


def test_fer_zoo_rebalance_checkpoint_reproduces_its_scores_in_fer_zoo_test(fitted, tmp_path, capsys):
    """The command's checkpoint, tested by the CLI with the printed tau, gives the command's own test figures."""
    from fer_zoo.cli import main
    from tests.helpers import baseline, best_checkpoint

    ckpt = tmp_path / "crt.ckpt"
    main(["rebalance", "--ckpt_path", best_checkpoint(fitted), "--out", str(ckpt), "--l2", "1e-3,1e-2"])
    printed = capsys.readouterr().out
    report = json.loads(ckpt.with_suffix(".json").read_text())
    tau = report["crt"]["tau"]
    assert f"--model.init_args.logit_adjust_tau {tau}" in printed
    assert set(report) >= {"plain", "logit_adjust", "tau_norm", "crt", "classes"}
    assert "optimizer_states" not in torch.load(ckpt, map_location="cpu", weights_only=True)
    main(
        baseline(
            "test",
            "--ckpt_path",
            str(ckpt),
            "--model.init_args.logit_adjust_tau",
            str(tau),
            "--run_dir",
            str(tmp_path / "test"),
        )
    )
    tested = json.loads((tmp_path / "test" / "test_report.json").read_text())
    assert tested["test/acc"] == pytest.approx(report["crt"]["test"]["acc"], abs=1e-6)
    assert tested["test/mca"] == pytest.approx(report["crt"]["test"]["mca"], abs=1e-6)


def test_fer_zoo_rebalance_bad_input_is_one_line(tmp_path):
    from fer_zoo.cli import main

    with pytest.raises(SystemExit, match="--ckpt_path .*missing.ckpt does not exist"):
        main(["rebalance", "--ckpt_path", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "x.ckpt")])
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as error:
        main(["rebalance", "--ckpt_path", str(junk), "--out", str(tmp_path / "x.ckpt")])
    assert "junk.ckpt" in str(error.value) and len(str(error.value).splitlines()) <= 2
