import numpy as np
import pytest

from fer_zoo.datamodules import AffectNetDataModule, FERPlusDataModule, RAFDBDataModule, SyntheticDataModule
from fer_zoo.datamodules.samplers import ProgressivelyBalancedSampler


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
