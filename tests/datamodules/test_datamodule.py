import numpy as np
import pytest
import torch

from fer_zoo.datamodules import AffectNetDataModule, FERPlusDataModule, RAFDBDataModule, SyntheticDataModule
from fer_zoo.datamodules.samplers import ProgressivelyBalancedSampler
from fer_zoo.errors import OptionError


def test_synthetic_batch_dict():
    dm = SyntheticDataModule(num_train=40, num_val=20, num_test=20, batch_size=8, num_workers=0, image_size=48)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 48, 48) and batch["label"].shape == (8,)
    assert batch["landmarks"].shape == (8, 68, 2) and batch["index"].shape == (8,)
    assert dm.num_classes == 7 and dm.class_names[0] == "surprise"


def test_real_layout_modules(ferplus_root, rafdb_root, affectnet_root):
    ferplus = FERPlusDataModule(root=str(ferplus_root), label_mode="crossentropy", batch_size=4, num_workers=0)
    ferplus.setup("fit")
    batch = next(iter(ferplus.train_dataloader()))
    assert batch["target"].shape == (4, 8) and ferplus.num_classes == 8
    raf = RAFDBDataModule(root=str(rafdb_root), batch_size=4, num_workers=0, image_size=64)
    raf.setup("test")
    assert next(iter(raf.test_dataloader()))["image"].shape == (8, 3, 64, 64)
    an = AffectNetDataModule(
        root=str(affectnet_root), protocol=7, batch_size=4, num_workers=0, sampler="class_balanced", val_fraction=0.34
    )
    an.setup("fit")
    assert an.num_classes == 7 and next(iter(an.train_dataloader()))["landmarks"].shape == (4, 68, 2)


def test_missing_root_is_a_clear_error():
    with pytest.raises(ValueError, match="--data.root"):
        FERPlusDataModule(root=None).setup("fit")
    with pytest.raises(ValueError, match="data.sampler"):
        SyntheticDataModule(sampler="nope")


def test_progressive_schedule_spans_the_fit_unless_set():
    from types import SimpleNamespace

    dm = SyntheticDataModule(sampler="progressive", num_train=40, num_val=8, num_test=8, num_workers=0)
    dm.trainer = SimpleNamespace(max_epochs=12, current_epoch=0)
    assert dm.progressive_schedule_epochs() == 12  # the official schedule: the whole run
    set_here = SyntheticDataModule(sampler="progressive", progressive_epochs=5, num_workers=0)
    set_here.trainer = dm.trainer
    assert set_here.progressive_schedule_epochs() == 5
    dm.setup("fit")
    sampler = dm.train_dataloader().sampler
    assert sampler.total_epochs == 12


def test_progressive_sampler_moves_to_class_balanced():
    labels = np.array([0] * 90 + [1] * 10)
    sampler = ProgressivelyBalancedSampler(labels, 2, total_epochs=4, seed=0)
    np.testing.assert_allclose(sampler.class_probabilities(0), [0.9, 0.1])
    np.testing.assert_allclose(sampler.class_probabilities(2), [0.7, 0.3])
    np.testing.assert_allclose(sampler.class_probabilities(4), [0.5, 0.5])
    sampler.set_epoch(4)
    drawn = labels[list(sampler)]
    assert 0.35 < drawn.mean() < 0.65
    sampler.set_epoch(0)
    assert labels[list(sampler)].mean() < 0.2


def test_progressive_sampler_epoch_zero_sees_every_image_once():
    # The official sampler takes exact per-class counts without replacement: at epoch 0 the epoch
    # is a permutation of the training set (drawing with replacement would show only ~63 %).
    labels = np.random.default_rng(3).integers(0, 7, 1000)
    sampler = ProgressivelyBalancedSampler(labels, 7, total_epochs=10, seed=0)
    assert sorted(sampler) == list(range(1000))


def test_progressive_sampler_exact_quotas_hand_computed():
    from fer_zoo.datamodules.samplers import largest_remainder_counts

    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    sampler = ProgressivelyBalancedSampler(labels, 3, total_epochs=2, seed=5)
    # epoch 2 of 2: class-balanced, 10/3 each = 3.33 -> floors 3, 3, 3; the one left over goes to class 0.
    np.testing.assert_array_equal(sampler.class_quotas(2), [4, 3, 3])
    sampler.set_epoch(2)
    drawn = np.array(list(sampler))
    # class 0: 4 distinct of its 6; class 1: all 3 once; class 2 (one image): that image 3 times.
    assert np.bincount(labels[drawn], minlength=3).tolist() == [4, 3, 3]
    assert len(set(drawn[labels[drawn] == 0])) == 4
    assert sorted(drawn[labels[drawn] == 1]) == [6, 7, 8] and drawn[labels[drawn] == 2].tolist() == [9, 9, 9]
    # epoch 1 of 2: probabilities (0.6 + 1/3) / 2, (0.3 + 1/3) / 2, (0.1 + 1/3) / 2 = 0.4667, 0.3167, 0.2167
    # -> 4.667, 3.167, 2.167 -> floors 4, 3, 2; one left over to the largest remainder (class 0).
    np.testing.assert_array_equal(sampler.class_quotas(1), [5, 3, 2])
    np.testing.assert_array_equal(largest_remainder_counts(np.array([0.25, 0.25, 0.25, 0.25]), 10), [3, 3, 2, 2])
    # same seed and epoch: the same order (all DDP ranks agree); another epoch: another order
    sampler.set_epoch(0)
    first, again = list(sampler), list(sampler)
    assert first == again and sorted(first) == list(range(10))
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_symmetric_noise_rate_and_clean_labels_kept():
    from fer_zoo.datasets.noise import corrupt_labels

    labels = np.random.default_rng(0).integers(0, 7, 20000)
    names = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
    noisy = corrupt_labels(labels, names, 0.2, "symmetric", seed=1)
    flipped = noisy != labels
    assert abs(flipped.mean() - 0.2) < 0.01
    # flips go to every other class about equally, never to the same class
    counts = np.bincount((noisy[flipped] - labels[flipped]) % 7, minlength=7)
    assert counts[0] == 0 and counts[1:].min() > 0.8 * counts[1:].mean()
    assert np.array_equal(corrupt_labels(labels, names, 0.2, "symmetric", seed=1), noisy)


def test_asymmetric_noise_follows_the_table_by_name():
    from fer_zoo.datasets.noise import corrupt_labels

    names = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    labels = np.repeat(np.arange(8), 1000)
    noisy = corrupt_labels(labels, names, 0.3, "asymmetric", seed=0)
    happy = labels == names.index("happiness")
    assert set(np.unique(noisy[happy])) == {names.index("happiness"), names.index("neutral")}
    with pytest.raises(ValueError, match="data.label_noise"):
        corrupt_labels(labels, names, 1.5, "symmetric", 0)


def test_data_module_corrupts_only_train_and_saves_the_table(ferplus_root, tmp_path):
    from fer_zoo.datamodules import FERPlusDataModule

    dm = FERPlusDataModule(
        root=str(ferplus_root),
        cache_dir=str(tmp_path),
        label_noise=0.5,
        noise_seed=3,
        num_workers=0,
        label_mode="probability",
    )
    train, val = dm.dataset("train"), dm.dataset("val")
    assert (train.labels != train.clean_labels).any() and getattr(val, "clean_labels", None) is None
    assert np.array_equal(train.manifest.targets.argmax(1), train.labels)  # soft targets follow the noise
    table = dm.noisy_label_table()
    assert len(table) == len(train) and train.summary["label_noise"]["rate"] == 0.5
    with pytest.raises(ValueError, match="data.noise_type"):
        FERPlusDataModule(root=str(ferplus_root), noise_type="pairflip")


def test_train_fraction_keeps_a_stratified_seeded_subset():
    # 40 synthetic training images; a quarter of each class, rounded per class, on the same rows
    # of the in-memory images, with val and test left whole and noise applied to the subset.
    full = SyntheticDataModule(num_train=40, num_val=10, num_test=10, num_workers=0, image_size=32)
    labels = full.dataset("train").labels.copy()
    dm = SyntheticDataModule(
        num_train=40, num_val=10, num_test=10, num_workers=0, image_size=32, train_fraction=0.25, label_noise=0.5
    )
    train = dm.dataset("train")
    expected = [int(round(0.25 * n)) for n in np.bincount(labels, minlength=7) if n]
    kept = np.bincount(train.clean_labels, minlength=7)
    assert sorted(kept[kept > 0].tolist()) == sorted(e for e in expected if e)
    assert len(train) == sum(expected) and len(dm.dataset("val")) == 10
    # every kept sample is the same image and clean label as in the full set
    for i, row in enumerate(train.rows):
        assert train.clean_labels[i] == labels[row]
        np.testing.assert_array_equal(train.image(i), full.dataset("train").image(int(row)))
    assert train.summary["subset"].startswith(f"{len(train)}/40")
    again = SyntheticDataModule(num_train=40, num_val=10, num_test=10, num_workers=0, image_size=32, train_fraction=0.25)
    np.testing.assert_array_equal(again.dataset("train").rows, train.rows)
    with pytest.raises(ValueError, match="data.train_fraction"):
        SyntheticDataModule(train_fraction=0.0)


def test_model_classes_relabel_another_dataset_and_leave_out_the_rest(ferplus_root):
    from fer_zoo.datamodules import FERPlusDataModule
    from fer_zoo.labels import CLASSES

    own = FERPlusDataModule(root=str(ferplus_root), num_workers=0)
    rafdb_order = list(CLASSES["rafdb"])
    cross = FERPlusDataModule(root=str(ferplus_root), num_workers=0, model_classes=rafdb_order)
    assert own.cross_dataset is None and cross.class_names == rafdb_order
    assert cross.cross_dataset["left_out"] == ["contempt"] and cross.cross_dataset["shared"] == rafdb_order
    before = own.dataset("test")
    after = cross.dataset("test")
    kept = [own.class_names[y] for y in before.labels if own.class_names[y] != "contempt"]
    assert [rafdb_order[y] for y in after.labels] == kept  # same images, same meaning, the model's ids
    assert after.summary["left_out"] == {"classes": ["contempt"], "samples": len(before) - len(after)}
    assert len(before) - len(after) == 1  # the fake test split has one contempt image
    assert "target" not in after[0]  # soft votes were in FERPlus' class space
    with pytest.raises(ValueError, match="data.model_classes"):
        FERPlusDataModule(root=str(ferplus_root), model_classes=["happy-ish"])


def test_imagefolder_maps_synonyms_and_names_a_bad_folder(tmp_path):
    from fer_zoo.datamodules import ImageFolderDataModule
    from tests.fakes import write_imagefolder

    write_imagefolder(tmp_path / "set", {"happy": 3, "Sad": 2, "2_angry": 1})
    dm = ImageFolderDataModule(root=str(tmp_path / "set"), num_workers=0, image_size=32)
    assert dm.class_names == ["happiness", "sadness", "anger"]
    data = dm.dataset("test")
    assert sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 2] and data[0]["image"].shape == (3, 32, 32)
    with pytest.raises(FileNotFoundError, match="train"):
        dm.dataset("train")
    write_imagefolder(tmp_path / "set", {"cats": 1})
    with pytest.raises(ValueError, match="cats"):
        ImageFolderDataModule(root=str(tmp_path / "set")).class_names


class _WorkerState(torch.utils.data.Dataset):
    """Reports the niceness and OpenCV thread count of the process that loads it."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        import os

        import cv2

        return torch.tensor([os.nice(0), cv2.getNumThreads()])


def test_loader_workers_yield_to_training_threads(ferplus_root):
    import os

    from torch.utils.data import DataLoader

    dm = FERPlusDataModule(root=str(ferplus_root), batch_size=2, num_workers=1, worker_nice=7)
    dm.setup("fit")
    init = dm.train_dataloader().worker_init_fn
    (state,) = list(DataLoader(_WorkerState(), batch_size=2, num_workers=1, worker_init_fn=init))
    assert state.tolist() == [[min(os.nice(0) + 7, 19), 1]] * 2
    with pytest.raises(OptionError, match="data.worker_nice"):
        FERPlusDataModule(root=str(ferplus_root), worker_nice=25)
