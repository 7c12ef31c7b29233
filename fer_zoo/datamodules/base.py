"""``FERDataModule``: one LightningDataModule shape for every FER dataset."""

from __future__ import annotations

import functools
import logging
import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from fer_zoo.datamodules.samplers import SAMPLERS, ProgressivelyBalancedSampler
from fer_zoo.datasets.base import FERDataset
from fer_zoo.errors import OptionError
from fer_zoo.labels import class_names
from fer_zoo.transforms import FERTransform
from fer_zoo.transforms.augment import AUGMENTATIONS

log = logging.getLogger(__name__)


class FERDataModule(L.LightningDataModule):
    """Shared data module: datasets per split, augmentation, samplers and loaders.

    A batch is a dict with ``image`` ``(B, 3, S, S)``, ``label`` ``(B,)``, ``index`` ``(B,)``,
    plus ``target`` ``(B, C)`` (soft labels) and ``landmarks`` ``(B, K, 2)`` where the
    dataset has them. :attr:`num_classes` and :attr:`class_names` are linked into the model
    by the CLI. Subclasses set :attr:`dataset_name` and implement :meth:`make_dataset`.
    """

    dataset_name: str = ""
    #: input side when neither ``image_size`` nor a face-pretrained weight tag sets one
    default_image_size: int = 64
    #: the dataset's images are grey (FERPlus): ``predict`` on colour photos converts crops to grey for its models
    greyscale_images: bool = False

    def __init__(
        self,
        image_size: int | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        worker_nice: int = 19,
        augment: str = "standard",
        hflip: float = 0.5,
        sampler: str = "none",
        progressive_epochs: int | None = None,
        cache_dir: str | None = None,
        skip_corrupt: bool = False,
        landmarks: str = "dataset",
        landmark_layout: int = 68,
        label_noise: float = 0.0,
        noise_type: str = "symmetric",
        noise_seed: int = 0,
        positive_pairs: bool = False,
        train_fraction: float = 1.0,
        subset_seed: int = 0,
        model_classes: list[str] | None = None,
    ) -> None:
        """Configure loading.

        Args:
            image_size: model input side in pixels. None: the input size of the model's face-pretrained
                weight tag when it has one (``fer-zoo fit`` fills it in: faceres 224, mobileface 112),
                else :attr:`default_image_size` (64; RAF-DB and AffectNet 112).
            batch_size: training batch size (per device).
            eval_batch_size: validation/test batch size (default: ``2 * batch_size``).
            num_workers: loader worker processes.
            worker_nice: niceness added to each loader worker (0-19), so decoding yields the cores to the
                training threads instead of stalling their parallel regions (CPU training on few cores:
                MPA, loader-heavy, went from ~0.5 to ~0.9 of its bare loop, `benchmarks/results/speed/`);
                each worker's OpenCV also runs on one thread. 0 keeps the workers' priority.
            augment: training augmentation level: none, light, standard or strong.
            hflip: training horizontal-flip probability (landmarks are re-ordered).
            sampler: ``none``, ``class_balanced`` or ``progressive`` (instance- to class-balanced
                over ``progressive_epochs``).
            progressive_epochs: epochs of the progressive schedule (None: the fit's ``max_epochs``, the
                official schedule spanning the whole run, so the last epoch is class-balanced).
            cache_dir: where packed image caches live (default ``$FER_ZOO_HOME/cache``).
            skip_corrupt: skip and count unreadable images instead of stopping at the first.
            landmarks: landmark source: ``dataset`` (the dataset's own), ``mediapipe`` (the cache of
                ``fer-zoo landmarks``) or ``none``.
            landmark_layout: 68 (iBUG) or 19 (AFLW) points.
            label_noise: share of training labels corrupted (noisy-label protocol; val and test stay
                clean). The clean labels are kept for analysis and the noisy set is saved with the run.
            noise_type: ``symmetric`` or ``asymmetric`` (see :mod:`fer_zoo.datasets.noise`).
            noise_seed: seed of the corruption (independent of the training seed).
            positive_pairs: training samples also carry ``positive_image``, a random other image of
                the same class (cross-similarity learning, e.g. LaCoVL-FER).
            train_fraction: share of each training class kept (stratified; 1 keeps all). For
                studies that need many epochs on a small compute budget; validation and test
                stay whole. Applied before ``label_noise``.
            subset_seed: seed of the ``train_fraction`` draw (independent of the training seed).
            model_classes: the classes of a model trained on another dataset, in its label order
                (cross-dataset evaluation; ``fer-zoo test/validate --ckpt_path`` fills it in when the
                checkpoint's classes differ from this dataset's). Samples of classes the model lacks
                are left out and labels are renumbered into the model's order; :attr:`cross_dataset`
                says what was shared and left out.
        """
        super().__init__()
        # Stored in checkpoints, so `fer-zoo predict` can reuse the training input size.
        self.save_hyperparameters()
        if sampler not in SAMPLERS:
            raise OptionError(f"data.sampler must be one of {SAMPLERS}, got {sampler!r}")
        if augment not in AUGMENTATIONS:
            raise OptionError(f"data.augment must be one of {AUGMENTATIONS}, got {augment!r}")
        image_size = image_size or self.default_image_size
        self.hparams.image_size = image_size  # checkpoints record the size actually used
        self.image_size, self.batch_size = image_size, batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        if not 0 <= worker_nice <= 19:
            raise OptionError(f"data.worker_nice must be within 0..19, got {worker_nice}")
        self.num_workers, self.worker_nice, self.augment, self.hflip = num_workers, worker_nice, augment, hflip
        self.sampler, self.progressive_epochs = sampler, progressive_epochs
        self.cache_dir, self.skip_corrupt = cache_dir, skip_corrupt
        if landmark_layout not in (68, 19):
            raise OptionError(f"data.landmark_layout must be 68 or 19, got {landmark_layout}")
        self.landmarks, self.landmark_layout = landmarks, landmark_layout
        from fer_zoo.datasets.noise import NOISE_TYPES

        if not 0.0 <= label_noise < 1.0:
            raise OptionError(f"data.label_noise must be in [0, 1), got {label_noise}")
        if noise_type not in NOISE_TYPES:
            raise OptionError(f"data.noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")
        self.label_noise, self.noise_type, self.noise_seed = label_noise, noise_type, noise_seed
        self.positive_pairs = positive_pairs
        if not 0.0 < train_fraction <= 1.0:
            raise OptionError(f"data.train_fraction must be in (0, 1], got {train_fraction}")
        self.train_fraction, self.subset_seed = train_fraction, subset_seed
        self.model_classes = list(model_classes) if model_classes else None
        if self.model_classes:
            from fer_zoo.labels import index_map

            try:
                index_map(self.model_classes, [])
            except ValueError as error:
                raise OptionError(f"data.model_classes: {error}") from None
        self.datasets: dict[str, FERDataset] = {}

    # --- what the model needs to know -------------------------------------------------
    @property
    def dataset_classes(self) -> list[str]:
        """Class names in the dataset's own label order."""
        return list(class_names(self.dataset_name))

    @property
    def class_names(self) -> list[str]:
        """Class names in the label order the model sees (the model's under cross-dataset evaluation)."""
        return list(self.model_classes) if self.model_classes else self.dataset_classes

    @functools.cached_property
    def cross_dataset(self) -> dict[str, list[str]] | None:
        """The classes shared by model and data under cross-dataset evaluation.

        Under cross-dataset evaluation, the model's classes the data has (``shared``) and the data's
        classes the model lacks (``left_out``); None when the model was trained on these classes. Computed once
        (the model asks for it every evaluation batch; an image folder's classes come from a directory scan).
        """
        if not self.model_classes or list(self.model_classes) == self.dataset_classes:
            return None
        data = set(self.dataset_classes)
        return {
            "model_classes": list(self.model_classes),
            "dataset_classes": self.dataset_classes,
            "shared": [c for c in self.model_classes if c in data],
            "left_out": [c for c in self.dataset_classes if c not in self.model_classes],
        }

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    # --- datasets ---------------------------------------------------------------------
    def make_dataset(self, split: str, transform: FERTransform) -> FERDataset:
        """Build the dataset of ``split`` (train, val or test) with ``transform``."""
        raise NotImplementedError

    def transform(self, train: bool) -> FERTransform:
        """The sample transform of a training or an evaluation split."""
        if train:
            return FERTransform(self.image_size, self.augment, self.hflip)
        return FERTransform(self.image_size, "none", 0.0)

    def dataset(self, split: str) -> FERDataset:
        """The dataset of ``split``, built on first use."""
        if split not in self.datasets:
            data = self.make_dataset(split, self.transform(split == "train"))
            data.use_landmarks(self.landmarks, self.landmark_layout)
            if split == "train" and self.train_fraction < 1.0:
                data.subsample(self.train_fraction, self.subset_seed)
            if split == "train" and self.label_noise > 0:
                data.apply_label_noise(self.label_noise, self.noise_type, self.noise_seed)
            if self.cross_dataset is not None:
                data.restrict_to(self.model_classes)
            log.info("%s/%s: %d samples %s", self.dataset_name, split, len(data), data.summary)
            self.datasets[split] = data
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Build the splits a stage needs."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}.get(
            stage or "", ("train", "val", "test")
        )
        for split in splits:
            self.dataset(split)

    # --- loaders ----------------------------------------------------------------------
    def progressive_schedule_epochs(self) -> int:
        """Epochs of the progressive sampler's schedule: ``progressive_epochs``, else the fit's ``max_epochs``."""
        if self.progressive_epochs is not None:
            return self.progressive_epochs
        max_epochs = getattr(self.trainer, "max_epochs", None) if self.trainer is not None else None
        return max(int(max_epochs), 1) if max_epochs and max_epochs > 0 else 1

    def _loader(self, split: str, train: bool) -> DataLoader:
        data = self.dataset(split)
        if train and self.positive_pairs:
            from fer_zoo.datasets.pairs import PositivePairs

            data = PositivePairs(data, seed=torch.initial_seed() % 2**31)
        sampler = None
        if train and self.sampler != "none":
            epochs = 0 if self.sampler == "class_balanced" else self.progressive_schedule_epochs()
            seed = torch.initial_seed() % 2**31  # seed_everything makes it equal on every rank
            epoch_fn = (lambda: self.trainer.current_epoch) if self.trainer is not None else None
            sampler = ProgressivelyBalancedSampler(data.labels, self.num_classes, epochs, seed, epoch_fn)
        return DataLoader(
            data,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            drop_last=train and len(data) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=False,
            worker_init_fn=functools.partial(_quiet_worker, nice=self.worker_nice),
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """An in-order loader of ``split`` at the evaluation batch size (features, analysis).

        The training split keeps its own transform: set ``augment: none`` and ``hflip: 0`` for its centre view.
        """
        return self._loader(split, False)

    def train_dataloader(self) -> DataLoader:
        """Training loader (augmented, shuffled or re-balanced)."""
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        """Validation loader."""
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        """Test loader."""
        return self._loader("test", False)

    def noisy_label_table(self) -> list[tuple[str, int, int]] | None:
        """``(file, noisy label, clean label)`` per training sample when label noise is on, else None."""
        data = self.datasets.get("train")
        if data is None or getattr(data, "clean_labels", None) is None:
            return None
        return [(str(f), int(n), int(c)) for f, n, c in zip(data.manifest.files, data.labels, data.clean_labels)]

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Samples per class in ``split``."""
        return np.bincount(self.dataset(split).labels, minlength=self.num_classes)



def _quiet_worker(worker_id: int, nice: int) -> None:
    """Loader worker set-up: OpenCV on one thread, lower CPU priority by ``nice``."""
    import cv2

    cv2.setNumThreads(1)
    if nice:
        os.nice(nice)
