"""fer_zoo.checkpoints: safe reading, resuming, slim checkpoints."""

import csv
import json

import pytest
import torch

from fer_zoo.cli import main
from tests.helpers import METHOD_ARGS, TINY, baseline, best_checkpoint, fit_two_steps


def test_unreadable_checkpoints_are_named(tmp_path, fitted):
    truncated = tmp_path / "half.ckpt"
    truncated.write_bytes(open(best_checkpoint(fitted), "rb").read()[:5000])
    with pytest.raises(SystemExit, match="half.ckpt: not a readable checkpoint"):
        main(["export", "--ckpt_path", str(truncated)])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["export", "--ckpt_path", str(tmp_path / "missing.ckpt")])


def test_interrupted_fit_resumes_from_last_checkpoint(tmp_path):
    args = baseline("fit", "--trainer.max_epochs", "2")
    try:
        main([*args, "--trainer.callbacks+=tests.helpers.InterruptAfterEpoch", "--run_dir", str(tmp_path / "a")])
    except SystemExit:
        pass  # Lightning exits after a graceful KeyboardInterrupt shutdown
    assert not (tmp_path / "a" / "fit_report.json").exists()
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 0
    main([*args, "--ckpt_path", str(last), "--run_dir", str(tmp_path / "a")])
    report = json.loads((tmp_path / "a" / "fit_report.json").read_text())
    assert report["epochs"] == 2 and report["global_step"] == 8
    # the curve of the epoch before the interruption is kept in the same run folder
    with open(tmp_path / "a" / "metrics.csv") as handle:
        epochs = {row["epoch"] for row in csv.DictReader(handle) if row.get("val/acc")}
    assert epochs == {"0", "1"}


def test_mpa_checkpoint_leaves_out_frozen_clip_loaded_from_a_spec(tmp_path):
    from safetensors.torch import save_file

    from fer_zoo.models.components.clip import CLIPEncoder

    def tiny_clip_file(seed):
        torch.manual_seed(seed)
        path = tmp_path / f"clip{seed}" / "open_clip_model.safetensors"
        path.parent.mkdir()
        save_file({k: v.contiguous() for k, v in CLIPEncoder("FERZoo-Tiny").model.state_dict().items()}, str(path))
        return path

    weights = tiny_clip_file(1)
    args = ["--model", "mpa", "--data", "synthetic", *TINY, *METHOD_ARGS["mpa"], "--model.clip_weights", str(weights)]
    fit_two_steps(args, tmp_path / "f")
    ckpt_path = best_checkpoint(tmp_path / "f")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    state = ckpt["state_dict"]
    assert not any(k.startswith("clip.model.") for k in state)  # frozen CLIP: reloaded from the spec
    assert {"text_prompts.ctx", "visual_prompts.prompts", "prototypes"} <= set(state)  # what trained is saved
    fit_val = json.loads((tmp_path / "f" / "fit_report.json").read_text())["last_val"]["val/acc"]
    main(["validate", *args, "--ckpt_path", ckpt_path, "--run_dir", str(tmp_path / "v")])
    assert json.loads((tmp_path / "v" / "val_report.json").read_text())["val/acc"] == pytest.approx(fit_val)
    tiny_clip_file(2).replace(weights)  # the file at the spec's path now holds other weights
    with pytest.raises(ValueError, match="differ from those it was trained with"):
        main(["test", *args, "--ckpt_path", ckpt_path, "--run_dir", str(tmp_path / "t")])


def test_test_with_a_truncated_checkpoint_is_one_named_line(fitted, tmp_path):
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(open(best_checkpoint(fitted), "rb").read()[:5000])
    with pytest.raises(SystemExit, match="--ckpt_path .*cut.ckpt: not a readable checkpoint"):
        main(["test", "--data", "synthetic", "--ckpt_path", str(truncated)])


