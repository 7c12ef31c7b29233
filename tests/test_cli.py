"""fer_zoo.cli: fit / test through LightningCLI, DDP, every method end to end, input errors."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from fer_zoo.cli import main
from tests.conftest import FITTED_SEED, REPO
from tests.helpers import CLASSES, METHOD_ARGS, TINY, baseline, best_checkpoint, fit_two_steps


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


def test_fit_writes_checkpoints_and_report(fitted):
    report = json.loads((fitted / "fit_report.json").read_text())
    assert report["best_model_path"].startswith(str(fitted / "checkpoints"))
    assert report["epochs"] == 2 and report["params"] > 1e6 and report["train_img_per_s"] > 0
    assert (fitted / "metrics.csv").exists() and (fitted / "lightning_config.yaml").exists()


def test_test_from_checkpoint(fitted, tmp_path):
    from fer_zoo.checkpoints import RUN_KEY

    ckpt = best_checkpoint(fitted)
    assert torch.load(ckpt, map_location="cpu", weights_only=True)[RUN_KEY] == {"seed": FITTED_SEED}
    main(baseline("test", "--ckpt_path", ckpt, "--run_dir", str(tmp_path)))
    test = json.loads((tmp_path / "test_report.json").read_text())
    # the report names the tested model's training seed, not the test command's default seed 0
    assert test["seed"] == json.loads((fitted / "fit_report.json").read_text())["seed"] == FITTED_SEED
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


@pytest.mark.parametrize("model", sorted(METHOD_ARGS))
def test_methods_fit_and_test(model, tmp_path):
    args = ["--model", model, "--data", "synthetic", *TINY, *METHOD_ARGS[model]]
    fit_two_steps(args, tmp_path / "fit")
    main(["test", *args, "--ckpt_path", best_checkpoint(tmp_path / "fit"), "--run_dir", str(tmp_path / "test")])
    report = json.loads((tmp_path / "test" / "test_report.json").read_text())
    assert 0.0 <= report["test/acc"] <= 1.0 and sum(map(sum, report["confusion_matrix"])) == 32


@pytest.mark.slow  # make test-full: keeps the default run near 10 minutes on 2 cores
@pytest.mark.ddp
def test_mpa_prototypes_under_ddp(tmp_path):
    run_ddp(tmp_path, "mpa", "--model.clip_arch", "FERZoo-Tiny")
    ckpt = torch.load(best_checkpoint(tmp_path), map_location="cpu", weights_only=False)
    assert bool(ckpt["state_dict"]["prototypes_ready"]) and ckpt["state_dict"]["prototypes"].abs().sum() > 0


@pytest.mark.slow  # make test-full: keeps the default run near 10 minutes on 2 cores
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


@pytest.mark.slow  # make test-full: keeps the default run near 10 minutes on 2 cores
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


def test_resolved_config_composes_base_and_delta_with_every_default():
    from fer_zoo.cli import resolved_config

    base = REPO / "experiments" / "ferplus" / "_base" / "ferplus-face.yaml"
    delta = REPO / "experiments" / "ferplus" / "face" / "balanced-softmax.yaml"
    config = resolved_config(["--config", str(base), "--config", str(delta)])
    model = config["model"]["init_args"]
    assert model["logit_adjust_train_tau"] == 1.0 and model["lr"] == 0.0005 and model["weights"] == "faceres.vggface2"
    assert model["test_time_flip"] is False  # a signature default, written nowhere in YAML
    assert config["data"]["init_args"]["label_mode"] == "crossentropy" and config["trainer"]["max_epochs"] == 10
