import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from fer_zoo.argv import expand_aliases
from fer_zoo.cli import main
from tests.conftest import IN_THE_WILD, REPO, needs_photos

TINY = [
    "--data.num_train",
    "64",
    "--data.num_val",
    "32",
    "--data.num_test",
    "32",
    "--data.image_size",
    "32",
    "--data.synth_size",
    "32",
    "--data.batch_size",
    "16",
    "--data.num_workers",
    "0",
    "--trainer.accelerator",
    "cpu",
]
CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def baseline(subcommand, *args, data="synthetic"):
    """Argument list of a baseline run on the tiny synthetic set (or ``data``)."""
    tiny = TINY if data == "synthetic" else ["--trainer.accelerator", "cpu"]
    return [subcommand, "--model", "baseline", "--data", data, *tiny, *args]


def best_checkpoint(run_dir):
    return json.loads((run_dir / "fit_report.json").read_text())["best_model_path"]


def test_aliases_expand_to_packaged_configs():
    out = expand_aliases(["fit", "--model", "baseline", "--data=synthetic", "--model", "fer_zoo.models.Baseline"])
    assert out[2].endswith("configs/model/baseline.yaml") and out[4].endswith("configs/data/synthetic.yaml")
    assert out[-1] == "fer_zoo.models.Baseline"


def test_fast_dev_run(tmp_path):
    main(baseline("fit", "--trainer.fast_dev_run", "true", "--run_dir", str(tmp_path)))


def test_print_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "baseline", "--data", "ferplus", "--print_config"])
    assert exit_info.value.code in (0, None)
    text = capsys.readouterr().out
    assert "fer_zoo.models.Baseline" in text and "FERPlusDataModule" in text and "label_mode: majority" in text


def test_bad_options_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit, match="^fer-zoo fit: model.optimizer must be one of"):
        main(
            baseline(
                "fit",
                "--model.init_args.optimizer",
                "rmsprop",
                "--trainer.fast_dev_run",
                "true",
                "--run_dir",
                str(tmp_path),
            )
        )
    with pytest.raises(SystemExit):
        main(["fit", "--model", "baseline", "--data", "synthetic", "--data.no_such_option", "1"])
    assert "no_such_option" in capsys.readouterr().err


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    main(baseline("fit", "--trainer.max_epochs", "2", "--run_dir", str(run), "--test_each_epoch", "true"))
    return run


def test_fit_writes_checkpoints_and_report(fitted):
    report = json.loads((fitted / "fit_report.json").read_text())
    assert report["best_model_path"].startswith(str(fitted / "checkpoints"))
    assert report["epochs"] == 2 and report["params"] > 1e6 and report["train_img_per_s"] > 0
    assert (fitted / "metrics.csv").exists() and (fitted / "lightning_config.yaml").exists()


def test_test_from_checkpoint(fitted, tmp_path):
    main(baseline("test", "--ckpt_path", best_checkpoint(fitted), "--run_dir", str(tmp_path)))
    test = json.loads((tmp_path / "test_report.json").read_text())
    assert 0 <= test["test/acc"] <= 1 and len(test["confusion_matrix"]) == 7
    assert sum(map(sum, test["confusion_matrix"])) == 32
    assert (tmp_path / "test_per_class.csv").read_text().startswith("class,accuracy,support")


def test_cross_dataset_test_on_ferplus_and_a_labelled_folder(fitted, ferplus_root, tmp_path):
    from fer_zoo.metrics import confusion_scores
    from tests.fakes import write_imagefolder

    ckpt = best_checkpoint(fitted)  # a 7-class synthetic (RAF-DB order) model
    main(["test", "--data", "ferplus", "--data.root", str(ferplus_root), "--data.num_workers", "0",
          "--trainer.accelerator", "cpu", "--ckpt_path", ckpt, "--run_dir", str(tmp_path / "ferplus")])
    report = json.loads((tmp_path / "ferplus" / "test_report.json").read_text())
    cross = report["cross_dataset"]
    assert cross["left_out"] == ["contempt"] and cross["shared"] == list(CLASSES)
    assert sum(map(sum, report["confusion_matrix"])) == 7  # 8 clear-majority test images, minus the contempt one

    write_imagefolder(tmp_path / "faces", {"happy": 4, "sad": 3, "Angry": 2})
    main(["test", "--data", "imagefolder", "--data.root", str(tmp_path / "faces"), "--data.num_workers", "0",
          "--trainer.accelerator", "cpu", "--ckpt_path", ckpt, "--run_dir", str(tmp_path / "folder")])
    report = json.loads((tmp_path / "folder" / "test_report.json").read_text())
    cross = report["cross_dataset"]
    assert cross["shared"] == ["happiness", "sadness", "anger"] and cross["left_out"] == []
    cm = torch.tensor(report["confusion_matrix"])
    assert report["class_names"] == list(CLASSES) and int(cm.sum()) == 9
    shared = [CLASSES.index(c) for c in cross["shared"]]
    assert report["test/acc"] == pytest.approx(confusion_scores(cm, shared)["acc"])
    assert report["test/acc"] == pytest.approx(float(cm.diagonal()[shared].sum()) / 9)
    # masking the 4 classes the folder lacks can only turn errors into hits
    assert report["test/shared_argmax/acc"] >= report["test/acc"]
    assert report["per_class_acc"]["surprise"] is None
    rows = (tmp_path / "folder" / "test_per_class.csv").read_text().splitlines()
    assert "surprise,,0" in rows


def test_export_onnx_matches_pytorch_with_a_dynamic_batch(fitted, tmp_path):
    import onnxruntime

    from fer_zoo.checkpoints import load_task

    ckpt = best_checkpoint(fitted)
    main(["export", "--ckpt_path", ckpt, "--format", "onnx", "--out", str(tmp_path / "m.onnx")])
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert sidecar["class_names"] == list(CLASSES) and sidecar["input"]["shape"] == ["batch", 3, 32, 32]
    assert sidecar["parity"]["max_abs_logit_diff"] < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 32, 32)
    logits, probs = session.run(None, {"images": images.numpy()})
    task, _ = load_task(ckpt)
    with torch.no_grad():
        assert np.abs(logits - task(images).numpy()).max() < 1e-4
    assert probs.shape == (3, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_unreadable_checkpoints_are_named(tmp_path, fitted):
    truncated = tmp_path / "half.ckpt"
    truncated.write_bytes(open(best_checkpoint(fitted), "rb").read()[:5000])
    with pytest.raises(SystemExit, match="half.ckpt: not a readable checkpoint"):
        main(["export", "--ckpt_path", str(truncated)])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["export", "--ckpt_path", str(tmp_path / "missing.ckpt")])


def test_best_test_epoch_is_reported(fitted):
    report = json.loads((fitted / "fit_report.json").read_text())
    with open(fitted / "metrics.csv") as handle:
        per_epoch = {int(r["epoch"]): float(r["test_each_epoch/acc"]) for r in csv.DictReader(handle) if r.get("test_each_epoch/acc")}
    assert set(per_epoch) == {0, 1} and all(0.0 <= a <= 1.0 for a in per_epoch.values())
    best = max(per_epoch, key=per_epoch.get)
    assert report["best_test_epoch"] == {"epoch": best, "acc": pytest.approx(per_epoch[best])}
    # (Checked by hand: the epoch-1 figure equals `fer-zoo test` of last.ckpt in isolation; in one full-suite run
    # they differed, 0.281 against 0.188 on 32 images, see the issue note: not asserted until understood.)


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


def test_resumed_fit_logs_each_step_once(tmp_path):
    args = baseline("fit", "--trainer.max_epochs", "2", "--trainer.log_every_n_steps", "1")
    try:
        main([*args, "--trainer.callbacks+=tests.helpers.InterruptMidEpoch", "--run_dir", str(tmp_path)])
    except SystemExit:
        pass
    with open(tmp_path / "metrics.csv") as handle:
        before = [int(r["step"]) for r in csv.DictReader(handle) if r.get("train/loss")]
    assert max(before) >= 4  # steps of epoch 1 were logged after the epoch-0 checkpoint (step 4)
    main([*args, "--ckpt_path", str(tmp_path / "checkpoints" / "last.ckpt"), "--run_dir", str(tmp_path)])
    with open(tmp_path / "metrics.csv") as handle:
        steps = [int(r["step"]) for r in csv.DictReader(handle) if r.get("train/loss")]
    assert sorted(steps) == steps and len(steps) == len(set(steps)) == 8  # 2 epochs x 4 steps, each once


def predictions(run_dir):
    with open(run_dir / "predictions.csv") as handle:
        return list(csv.DictReader(handle))


def test_predict_folder_writes_csv(fitted, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"{i}.png")
    main(
        baseline(
            "predict",
            "--data.root",
            str(images),
            "--data.detect_faces",
            "false",
            "--data.image_size",
            "32",
            "--ckpt_path",
            best_checkpoint(fitted),
            "--run_dir",
            str(tmp_path / "pred"),
            data="folder",
        )
    )
    rows = predictions(tmp_path / "pred")
    assert len(rows) == 3 and rows[0]["prediction"] in CLASSES
    assert abs(sum(float(rows[0][k]) for k in rows[0] if k.startswith("p_")) - 1) < 1e-3


def test_predict_video_frames_with_temporal_smoothing(fitted, tmp_path):
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (40, 40))
    for i in range(6):
        writer.write(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    writer.release()
    common = ["--data.root", str(video), "--data.detect_faces", "false", "--data.frame_stride", "2",
              "--ckpt_path", best_checkpoint(fitted)]
    main(baseline("predict", *common, "--run_dir", str(tmp_path / "raw"), data="folder"))
    main(baseline("predict", *common, "--data.temporal_smoothing", "0.5", "--run_dir", str(tmp_path / "ema"),
                  data="folder"))
    raw, ema = predictions(tmp_path / "raw"), predictions(tmp_path / "ema")
    assert [r["frame"] for r in raw] == ["0", "2", "4"] and [r["time_s"] for r in raw] == ["0.000", "0.200", "0.400"]
    p = lambda rows, i: np.array([float(rows[i][f"p_{c}"]) for c in CLASSES])
    expected = p(raw, 0)
    for i in range(3):  # p_t = 0.5 p_(t-1) + 0.5 q_t, by hand
        expected = p(raw, 0) if i == 0 else 0.5 * expected + 0.5 * p(raw, i)
        assert np.allclose(p(ema, i), expected, atol=2e-4)


def test_predict_greyscale_switch_changes_colour_inputs_only(fitted, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    colour = np.zeros((40, 40, 3), np.uint8)
    colour[..., 0] = 255  # pure red: grey value 76
    Image.fromarray(colour).save(images / "red.png")
    Image.fromarray(np.full((40, 40, 3), 76, np.uint8)).save(images / "grey76.png")
    for name, grey in (("colour", "false"), ("grey", "true")):
        main(baseline("predict", "--data.root", str(images), "--data.detect_faces", "false", "--data.greyscale", grey,
                      "--ckpt_path", best_checkpoint(fitted), "--run_dir", str(tmp_path / name), data="folder"))
    colour_rows = {Path(r["path"]).name: r for r in predictions(tmp_path / "colour")}
    grey_rows = {Path(r["path"]).name: r for r in predictions(tmp_path / "grey")}
    probs = lambda r: [r[f"p_{c}"] for c in CLASSES]
    assert probs(grey_rows["red.png"]) == probs(grey_rows["grey76.png"]) == probs(colour_rows["grey76.png"])
    assert probs(colour_rows["red.png"]) != probs(grey_rows["red.png"])


@needs_photos
def test_predict_real_photos_finds_every_face(fitted, tmp_path):
    pytest.importorskip("mediapipe")
    # No --data.image_size: the training input size (32) comes from the checkpoint.
    main(
        baseline(
            "predict",
            "--data.root",
            str(IN_THE_WILD),
            "--ckpt_path",
            best_checkpoint(fitted),
            "--run_dir",
            str(tmp_path),
            data="folder",
        )
    )
    by_file = {}
    for row in predictions(tmp_path):
        by_file.setdefault(row["path"].split("/")[-1], []).append(row)
    assert len(by_file) == 6 and len(by_file["kids.jpg"]) >= 2
    assert all(r["face_found"] == "True" for rows in by_file.values() for r in rows)


def test_wandb_offline_run_logs_test_tables(fitted, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    main(baseline("test", "--ckpt_path", best_checkpoint(fitted), "--run_dir", str(tmp_path)))
    import wandb

    wandb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # Logged tables are written by the client itself (the binary run log is flushed asynchronously).
    tables = sorted(p.name for p in (runs[0] / "files" / "media" / "table" / "test").glob("*.table.json"))
    assert any(t.startswith("per_class") for t in tables) and any(t.startswith("confusion_matrix") for t in tables)
    per_class = json.loads(next((runs[0] / "files" / "media" / "table" / "test").glob("per_class*")).read_text())
    assert per_class["columns"] == ["class", "accuracy", "support"] and len(per_class["data"]) == 7


def run_ddp(
    tmp_path,
    model,
    *args,
    limit=("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"),
):
    """Fit ``model`` on the tiny synthetic set with DDP on 2 CPU processes; assert it exits 0."""
    cmd = [
        sys.executable,
        "-m",
        "fer_zoo",
        "fit",
        "--model",
        model,
        "--data",
        "synthetic",
        *TINY,
        *args,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        *limit,
        "--run_dir",
        str(tmp_path),
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.ddp
def test_ddp_two_cpu_processes(tmp_path):
    run_ddp(tmp_path, "baseline", "--test_each_epoch", "true")
    report = json.loads((tmp_path / "fit_report.json").read_text())
    assert report["world_size"] == 2
    # rank zero tests the whole test split and broadcasts it; the figure is a real accuracy
    assert 0.0 <= report["best_test_epoch"]["acc"] <= 1.0 and report["best_test_epoch"]["epoch"] == 0


METHOD_ARGS = {
    "e2n": ["--model.clip_arch", "FERZoo-Tiny"],
    "mpa": ["--model.clip_arch", "FERZoo-Tiny"],
    "clip-zeroshot": ["--model.clip_arch", "FERZoo-Tiny"],
    "clip-linear": ["--model.clip_arch", "FERZoo-Tiny"],
    "lanet": ["--model.queue_size", "64", "--data.sampler", "progressive"],
    "lacovl": [
        "--model.pyramid",
        "resnet18",
        "--model.dim",
        "32",
        "--model.heads",
        "2",
        "--model.clip_arch",
        "FERZoo-Tiny",
        "--model.landmark_input",
        "32",
        "--data.positive_pairs",
        "true",
    ],
}


def fit_two_steps(args, run_dir):
    """One epoch of two training batches, then validation, into ``run_dir``."""
    main(["fit", *args, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--run_dir", str(run_dir)])


@pytest.mark.parametrize("model", sorted(METHOD_ARGS))
def test_methods_fit_and_test(model, tmp_path):
    args = ["--model", model, "--data", "synthetic", *TINY, *METHOD_ARGS[model]]
    fit_two_steps(args, tmp_path / "fit")
    main(["test", *args, "--ckpt_path", best_checkpoint(tmp_path / "fit"), "--run_dir", str(tmp_path / "test")])
    report = json.loads((tmp_path / "test" / "test_report.json").read_text())
    assert 0.0 <= report["test/acc"] <= 1.0 and sum(map(sum, report["confusion_matrix"])) == 32


@pytest.mark.ddp
def test_mpa_prototypes_under_ddp(tmp_path):
    run_ddp(tmp_path, "mpa", "--model.clip_arch", "FERZoo-Tiny")
    ckpt = torch.load(best_checkpoint(tmp_path), map_location="cpu", weights_only=False)
    assert bool(ckpt["state_dict"]["prototypes_ready"]) and ckpt["state_dict"]["prototypes"].abs().sum() > 0


@pytest.mark.ddp
def test_lanet_under_ddp_with_label_noise(tmp_path):
    run_ddp(tmp_path, "lanet", "--model.queue_size", "96", "--data.label_noise", "0.2")
    with open(tmp_path / "train_labels_noisy.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 64 and any(r["noisy_label"] != r["clean_label"] for r in rows)
    ckpt = torch.load(best_checkpoint(tmp_path), map_location="cpu", weights_only=False)
    assert (
        ckpt["state_dict"]["bank"].shape == (64, 7) and int(ckpt["state_dict"]["queue_ptr"]) == 64
    )  # 2 steps x global batch 32


@pytest.mark.ddp
def test_lacovl_fast_dev_run_under_ddp(tmp_path):
    run_ddp(tmp_path, "lacovl", *METHOD_ARGS["lacovl"], limit=("--trainer.fast_dev_run", "true"))


def test_pretrained_landmark_network_feeds_lacovl(tmp_path):
    main(
        [
            "pretrain-landmarks",
            "--data",
            "synthetic",
            "--epochs",
            "1",
            "--image_size",
            "32",
            "--batch_size",
            "16",
            "--num_workers",
            "0",
            "--out",
            str(tmp_path / "lm"),
            "--data_options",
            "num_train=64",
            "num_val=32",
            "num_test=32",
            "synth_size=32",
        ]
    )
    report = json.loads((tmp_path / "lm" / "pretrain_report.json").read_text())
    assert report["val_nme"] is not None and report["val_nme"] > 0 and report["val_nme_mean_shape"] > 0
    weights = tmp_path / "lm" / "landmark_net.pt"
    main(
        [
            "fit",
            "--model",
            "lacovl",
            "--data",
            "synthetic",
            *TINY,
            *METHOD_ARGS["lacovl"],
            "--model.landmark_weights",
            str(weights),
            "--trainer.fast_dev_run",
            "true",
            "--run_dir",
            str(tmp_path / "f"),
        ]
    )


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


def test_input_size_follows_a_face_weight_tag_unless_set(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from fer_zoo.models.components.mobileface import MobileFace

    monkeypatch.setenv("FER_ZOO_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "weights").mkdir(parents=True)
    save_file(MobileFace().state_dict(), str(tmp_path / "home" / "weights" / "mobileface.face.safetensors"))
    at = TINY.index("--data.image_size")
    tiny = TINY[:at] + TINY[at + 2 :]
    face = ["--model.init_args.backbone", "mobileface", "--model.init_args.weights", "mobileface.face"]
    for extra, expected in (([], 112), (["--data.image_size", "48"], 48)):
        run_dir = tmp_path / f"run{expected}"
        args = ["fit", "--model", "baseline", "--data", "synthetic", *tiny, *face, *extra]
        main([*args, "--trainer.fast_dev_run", "true", "--run_dir", str(run_dir)])
        assert _trained_size(run_dir) == expected
    # without a face tag, the dataset's default
    main(["fit", "--model", "baseline", "--data", "synthetic", *tiny, "--trainer.fast_dev_run", "true",
          "--run_dir", str(tmp_path / "plain")])  # fmt: skip
    assert _trained_size(tmp_path / "plain") == 64


def _trained_size(run_dir):
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return checkpoint["datamodule_hyper_parameters"]["image_size"]


def test_test_with_a_truncated_checkpoint_is_one_named_line(fitted, tmp_path):
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(open(best_checkpoint(fitted), "rb").read()[:5000])
    with pytest.raises(SystemExit, match="--ckpt_path .*cut.ckpt: not a readable checkpoint"):
        main(["test", "--data", "synthetic", "--ckpt_path", str(truncated)])


def _experiment_rows():
    """Every stand-alone experiment file and every index row (its configs composed left to right)."""
    from benchmarks.run import experiment_files, experiment_index

    rows = []
    for folder in sorted(p for p in (REPO / "experiments").iterdir() if p.is_dir()):
        rows += [(f"{folder.name}/{f.stem}", [f]) for f in sorted(folder.glob("*.yaml")) if f.name != "index.yaml"]
        rows += [(f"{folder.name}/{row}", experiment_files(folder.name, row))
                 for row in (experiment_index(folder.name).get("rows") or {})]
    return rows


@pytest.mark.parametrize("name,configs", _experiment_rows(), ids=lambda v: v if isinstance(v, str) else "")
def test_experiment_configs_parse(name, configs, capsys):
    """Every committed experiment parses with the CLI's type checks (a renamed option fails here, not mid-bench)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *[a for c in configs for a in ("--config", str(c))], "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path: fer_zoo.models." in capsys.readouterr().out


def test_index_rows_name_existing_configs_and_deltas_are_short():
    from benchmarks.run import experiment_index

    for folder in (p for p in (REPO / "experiments").iterdir() if (p / "index.yaml").is_file()):
        index = experiment_index(folder.name)
        for row, entry in index["rows"].items():
            assert all((folder / c).is_file() for c in entry["configs"]), row
            assert entry["configs"][0].startswith("_base/"), f"{row}: a row starts from a protocol base"
            for delta in entry["configs"][1:]:
                assert "class_path: fer_zoo.datamodules" not in (folder / delta).read_text(), f"{delta} repeats data"


def test_fit_without_data_uses_the_synthetic_faces(capsys):
    """The README's own command: ``fer-zoo fit --model lacovl`` with no --data."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "lacovl", "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "fer_zoo.datamodules.SyntheticDataModule" in out and "fer_zoo.models.LaCoVL" in out


def test_unknown_model_or_data_alias_is_one_line():
    with pytest.raises(SystemExit, match="unknown --model 'nosuchmodel'; one of baseline, .*lacovl") as info:
        main(["fit", "--model", "nosuchmodel"])
    assert "\n" not in str(info.value)
    with pytest.raises(SystemExit, match="unknown --data 'rafbd'"):
        main(["fit", "--model", "baseline", "--data", "rafbd"])


def test_missing_dataset_root_is_two_lines_without_traceback(tmp_path):
    cmd = [sys.executable, "-m", "fer_zoo", "fit", "--model", "baseline", "--data", "ferplus", "--data.root",
           str(tmp_path / "nowhere"), "--trainer.fast_dev_run", "true", "--run_dir", str(tmp_path / "run")]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, "WANDB_MODE": "disabled"})
    assert result.returncode != 0 and "Traceback" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-2:]
    assert last[0].startswith("fer-zoo fit: ferplus: expected") and str(tmp_path / "nowhere") in last[0]
    assert "--data.root" in last[1]


def test_corrupt_image_under_test_is_named_without_traceback(fitted, tmp_path):
    for name in CLASSES:
        (tmp_path / "faces" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), (120, 90, 80)).save(tmp_path / "faces" / name / "ok.png")
    (tmp_path / "faces" / "fear" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(SystemExit, match=r"^fer-zoo test: .*faces/fear/bad.png: cannot read image") as info:
        main(["test", "--data", "imagefolder", "--data.root", str(tmp_path / "faces"), "--data.num_workers", "1",
              "--ckpt_path", best_checkpoint(fitted), "--run_dir", str(tmp_path / "run")])
    assert len(str(info.value).splitlines()) <= 2


def test_epoch_line_reports_loss_validation_speed_and_eta():
    from fer_zoo.callbacks import epoch_line

    class Throughput:
        images_per_second = 64.25

    trainer = SimpleNamespace(current_epoch=1, max_epochs=10,
                              callback_metrics={"train/loss": torch.tensor(0.5), "val/acc": torch.tensor(0.8125)})
    line = epoch_line(trainer, time.perf_counter() - 120.0, 0, Throughput())
    # 2 epochs in 2 minutes: 8 left take 8 minutes
    assert line.startswith("epoch 2/10  train/loss 0.5000  val/acc 0.8125  64.2 img/s  elapsed 2.0 min  ETA 8.0 min")


def test_wandb_names_come_from_the_experiment_not_the_model_class():
    from fer_zoo.argv import experiment_name

    base, delta = Path("experiments/ferplus/_base/ferplus-face.yaml"), Path("experiments/ferplus/face/x.yaml")
    assert experiment_name([base, delta], "baseline") == "ferplus-face+x"
    assert experiment_name(None, "baseline") == "baseline"


def test_packaged_yaml_holds_only_deviations_from_the_class_signature():
    """One source of defaults: a packaged alias never repeats a value its class signature already has."""
    import importlib
    import inspect

    import yaml

    for path in sorted((REPO / "fer_zoo" / "configs").glob("*/*.yaml")):
        node = yaml.safe_load(path.read_text())
        if not isinstance(node, dict) or "class_path" not in node:
            continue
        module, _, name = node["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        defaults = {}
        for klass in reversed(cls.__mro__):
            if "__init__" in vars(klass):
                params = inspect.signature(klass.__init__).parameters.values()
                defaults.update({p.name: p.default for p in params if p.default is not inspect.Parameter.empty})
        repeated = [k for k, v in (node.get("init_args") or {}).items() if k in defaults and defaults[k] == v]
        assert not repeated, f"{path.name} repeats class defaults {repeated}"


def test_resolved_config_composes_base_and_delta_with_every_default():
    from fer_zoo.cli import resolved_config

    base = REPO / "experiments" / "ferplus" / "_base" / "ferplus-face.yaml"
    delta = REPO / "experiments" / "ferplus" / "face" / "balanced-softmax.yaml"
    config = resolved_config(["--config", str(base), "--config", str(delta)])
    model = config["model"]["init_args"]
    assert model["logit_adjust_train_tau"] == 1.0 and model["lr"] == 0.0005 and model["weights"] == "faceres.vggface2"
    assert model["test_time_flip"] is False  # a signature default, written nowhere in YAML
    assert config["data"]["init_args"]["label_mode"] == "crossentropy" and config["trainer"]["max_epochs"] == 10
