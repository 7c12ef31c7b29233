"""The ``fer-zoo`` command: LightningCLI (fit, validate, test, predict) plus project subcommands.

``--model NAME`` and ``--data NAME`` take short aliases that expand to packaged YAML
defaults (``fer_zoo/configs/{model,data}/NAME.yaml``); class names and paths work too.
Every run gets a folder (``--run_dir``, default ``runs/<dataset>-<model>/<time>``) holding
its config, CSV metrics, checkpoints, reports and the offline W&B run.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningCLI, SaveConfigCallback

from fer_zoo.argv import (
    RUN_SUBCOMMANDS,
    expand_aliases,
    experiment_name,
    model_from_checkpoint,
    trained_on_grey_images,
)
from fer_zoo.callbacks import (
    EpochLine,
    PredictionCSVWriter,
    RunReport,
    TestEachEpoch,
    ThroughputMonitor,
)
from fer_zoo.checkpoints import AtomicCheckpointIO, StepCheckpoint, disk_full_message
from fer_zoo.commands import EXTRA_COMMANDS
from fer_zoo.errors import input_error, input_error_message
from fer_zoo.loggers import RunCSVLogger, TrimResumedLog
from fer_zoo.watchdog import start_orphan_watchdog

log = logging.getLogger(__name__)
STAMP_ENV = "FER_ZOO_RUN_STAMP"  # shared by DDP ranks so they agree on the run folder
# Evaluation-time model options: the evaluating command decides them, never the checkpoint's hyper-parameters.
TEST_TIME_OPTIONS = ("test_time_flip", "logit_adjust_tau")
TRAINER_DEFAULTS = str(Path(__file__).parent / "configs" / "trainer" / "default.yaml")


RUN_HELP = (
    "fer-zoo {sub}: --model and --data take aliases (`fer-zoo list`), class paths or YAML files. Without --data "
    "(and no --config naming data) the generated synthetic faces are used, so every command runs anywhere. "
    "Memory: the packaged models fit a 24 GB machine per process (paper-size LaCoVL, --model lacovl, about 13 GB "
    "per process on CPU; DDP multiplies it by the number of processes)."
)


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

    def __init__(self, *args: Any, checkpoint_meta: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """``checkpoint_meta``: the ``--ckpt_path`` hyper-parameters :func:`main` already read (read once)."""
        self.checkpoint_meta = checkpoint_meta
        super().__init__(*args, **kwargs)

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
        checkpoint = self.checkpoint_meta if self.subcommand in ("test", "validate", "predict") else None
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
                data_init.greyscale = trained_on_grey_images(trained_on.get("_class_path"))
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
        if sub != "fit" and self.checkpoint_meta:  # name the model's training seed, not this run's default 0
            seed = self.checkpoint_meta.get("run", {}).get("seed", seed)
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


def main(args: ArgsType = None) -> None:
    """Entry point of ``fer-zoo`` / ``python -m fer_zoo``."""
    argv = list(sys.argv[1:] if args is None else args)
    start_orphan_watchdog()  # a DDP rank whose launcher died ends instead of hanging
    if argv and argv[0] in EXTRA_COMMANDS:
        EXTRA_COMMANDS[argv[0]](argv[1:])
        return
    from fer_zoo.datamodules import FERDataModule  # (importing them makes class names resolvable)
    from fer_zoo.models import FERTask

    with_model, checkpoint_meta = model_from_checkpoint(argv)
    expanded = expand_aliases(with_model)
    if args is None:  # LightningCLI reads sys.argv itself; hand it the expanded aliases there
        sys.argv = [sys.argv[0], *expanded]
    sub = expanded[0] if expanded else ""
    try:
        run_cli(FERTask, FERDataModule, args, expanded, TRAINER_DEFAULTS, checkpoint_meta)
    except Exception as error:
        bad_input = input_error(error)
        if bad_input is not None:
            raise SystemExit(input_error_message(bad_input, sub)) from None
        if isinstance(error, OSError):
            raise SystemExit(disk_full_message(error, sub)) from None
        raise



def resolved_config(args: list[str]) -> dict[str, Any]:
    """The full ``fit`` config a command line gives, every default filled in by jsonargparse; nothing is built.

    ``args`` are ``fer-zoo fit`` arguments (aliases, ``--config`` files and overrides, composed as the CLI does).
    The benchmark runner reads recipes from here, so the class signatures stay the one source of defaults.
    """
    import yaml

    import fer_zoo.datamodules  # noqa: F401  (make class names resolvable)
    import fer_zoo.models  # noqa: F401
    from fer_zoo.datamodules import FERDataModule
    from fer_zoo.models import FERTask

    # the packaged defaults less the options only a subcommand takes (weights_only: fit/test's ckpt loading)
    packaged = yaml.safe_load(Path(TRAINER_DEFAULTS).read_text())
    packaged.pop("weights_only", None)
    defaults = Path(tempfile.gettempdir()) / f"fer_zoo_trainer_defaults_{os.getpid()}.yaml"
    defaults.write_text(yaml.safe_dump(packaged))

    class ParseOnly(FerZooCLI):
        def before_instantiate_classes(self) -> None:
            pass

        def instantiate_classes(self) -> None:
            pass

    # The caller's own command line (a benchmark script's options) is not this parse's: hide it, or LightningCLI
    # warns that both `args` and sys.argv were given.
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        cli = ParseOnly(
            FERTask,
            FERDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=expand_aliases(["fit", *args])[1:],
            run=False,
            seed_everything_default=0,
            save_config_callback=None,
            parser_kwargs={"default_config_files": [str(defaults)]},
            auto_configure_optimizers=False,
        )
    finally:
        sys.argv = argv
        defaults.unlink(missing_ok=True)
    return yaml.safe_load(cli.parser.dump(cli.config, skip_none=False))


def run_cli(
    task: type,
    datamodule: type,
    args: ArgsType,
    expanded: list[str],
    defaults: str,
    checkpoint_meta: dict[str, Any] | None = None,
) -> None:
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
        checkpoint_meta=checkpoint_meta,
    )
