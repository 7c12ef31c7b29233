"""Checkpoints: reading their metadata safely, loading a task, writing them atomically and every N steps."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

#: checkpoint key of the fit's own record (its seed), written by :class:`fer_zoo.callbacks.RunReport`
RUN_KEY = "fer_zoo_run"


def read_checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The hyper-parameters of a Lightning checkpoint, read with ``weights_only=True`` (runs no code).

    ``fer-zoo`` reads them once per command (:func:`fer_zoo.cli.main` hands them to the CLI). ``run`` holds what
    the fit recorded about itself (:data:`RUN_KEY`: its seed), empty for checkpoints written before it did.

    Raises:
        ValueError: naming the file when it cannot be read as a checkpoint (truncated, not a checkpoint).
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
        raise ValueError(f"{path}: not a readable checkpoint ({type(error).__name__}: {first[:200]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path}: not a Lightning checkpoint (no state_dict)")
    meta = {k: checkpoint.get(k) or {} for k in ("hyper_parameters", "datamodule_hyper_parameters")}
    return {**meta, "run": checkpoint.get(RUN_KEY) or {}}


def load_task(ckpt_path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The FER task stored in a checkpoint (class from its hyper-parameters), in eval mode, and its metadata.

    The checkpoint is read with ``weights_only=True`` (it cannot run code).

    Raises:
        ValueError: naming the file when it is no readable fer-zoo checkpoint.
    """
    meta = read_checkpoint_meta(ckpt_path)
    hparams = dict(meta["hyper_parameters"])
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if not class_path:
        raise ValueError(f"{ckpt_path}: the checkpoint does not name its model class (not written by fer-zoo fit)")
    from fer_zoo.registry import import_class

    task = import_class(class_path).load_from_checkpoint(str(ckpt_path), map_location="cpu", weights_only=True, **hparams)
    return task.eval(), meta


class StepCheckpoint(L.Callback):
    """Write ``last.ckpt`` every ``every_n_steps`` optimiser steps (atomically, by :class:`AtomicCheckpointIO`).

    An epoch can be long (AffectNet: ~4,500 steps at batch 64); a job killed by a scheduler then
    loses at most ``every_n_steps`` steps. A kill during the write leaves the previous ``last.ckpt``
    intact, never a half-written one.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        """Checkpoint into ``dirpath/last.ckpt`` every ``every_n_steps`` steps (> 0)."""
        if every_n_steps <= 0:
            raise ValueError(f"--checkpoint_every_n_steps must be > 0, got {every_n_steps}")
        self.path, self.every = Path(dirpath) / "last.ckpt", every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        """Save when the step count is a multiple of ``every_n_steps``."""
        if trainer.global_step % self.every or trainer.sanity_checking:
            return
        # weights_only=False: a full, resumable checkpoint (and no "weights_only was not set" line per save)
        trainer.save_checkpoint(self.path, weights_only=False)  # every rank must call it; rank zero writes
        trainer.strategy.barrier("step_checkpoint")


#: errno values that mean "the disk (or the user's quota, or the file-size limit) is full".
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the message names the file and what was kept."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write every checkpoint to a temporary file beside it, ``fsync`` it, then rename it into place.

    Lightning's own writer goes through an fsspec transaction whose temporary file lives in the
    system temp folder: when that is another file system than the run folder (a tmpfs ``/tmp``, a
    network scratch disk), the final move is a copy over the old file, and a disk that fills up
    during the copy leaves a truncated ``last.ckpt`` where a good one was. Here the previous file
    is replaced only by a complete one; on any write error the partial file is deleted (freeing the
    space) and :class:`CheckpointWriteError` names the file and the checkpoint that was kept.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        """Save ``checkpoint`` to ``path`` atomically."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A fixed name (one writer per run: rank zero): a kill during the write leaves no pile of temporaries.
        tmp = path.with_name(f".{path.name}.tmp")
        # Serialise in memory first: torch.save streaming into a file reports a full disk as a RuntimeError from its
        # zip writer ("unexpected pos"), a plain write as OSError(ENOSPC). Lightning's writer buffers the same way.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            write_file(tmp, buffer.getbuffer())
            os.replace(tmp, path)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            kept = f"the previous {path.name} is kept" if path.exists() else "no earlier file of that name existed"
            full = " (disk full)" if error.errno in DISK_FULL else ""
            raise CheckpointWriteError(
                error.errno,
                f"cannot write checkpoint {path}{full}: {error.strerror or error}; the partial file was deleted and "
                f"{kept}. Free space or pass another --run_dir, then resume with --ckpt_path <run>/checkpoints/last.ckpt",
            ) from error


def write_file(path: Path, data: memoryview | bytes) -> None:
    """Write ``data`` to ``path`` and ``fsync`` it, so a rename after it publishes complete bytes."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


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
