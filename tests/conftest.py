"""Shared fixtures: an offline, W&B-free environment and fake datasets in official layouts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import fakes

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
FERPLUS_REAL = SHARED / "ferplus"
IN_THE_WILD = SHARED / "in_the_wild"

# Set before any test imports wandb or a hub client.
os.environ["WANDB_MODE"] = "disabled"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["FER_ZOO_OFFLINE"] = "1"
# `make test` runs two pytest-xdist workers on two cores: each worker, and the fits it spawns, use one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

#: tests that run whole fits in subprocesses (minutes): started first, so two xdist workers finish together
LONG_MODULES = ("test_benchmark.py", "test_robustness.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, run the long tests (DDP, runner, fault injection) first: the short ones then fill the gaps."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: not (item.get_closest_marker("ddp") or item.path.name in LONG_MODULES))


needs_ferplus = pytest.mark.skipif(
    not (FERPLUS_REAL / "fer2013new.csv").exists(), reason="../shared/data/ferplus is absent"
)
needs_photos = pytest.mark.skipif(not IN_THE_WILD.is_dir(), reason="../shared/data/in_the_wild is absent")


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.getbasetemp() / "fer_zoo_home"
    monkeypatch.setenv("FER_ZOO_HOME", str(home))
    monkeypatch.delenv("FER_ZOO_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))


@pytest.fixture(scope="session")
def ferplus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ferplus")
    fakes.write_ferplus(root)
    return root


@pytest.fixture(scope="session")
def rafdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rafdb")
    fakes.write_rafdb(root)
    return root


@pytest.fixture(scope="session")
def affectnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("affectnet")
    fakes.write_affectnet(root)
    return root


#: the seed of the shared fitted run (not the CLI's default 0, so reports that name it can be told apart)
FITTED_SEED = 7


@pytest.fixture(scope="session")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny baseline fitted for 2 epochs on the synthetic set (its run folder), shared by the CLI tests.

    Under xdist the workers share one fit (the first to take the lock makes it); the tests only read it.
    """
    from filelock import FileLock

    from fer_zoo.cli import main
    from tests.helpers import baseline

    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    run = root / "fitted-run"
    with FileLock(str(root / "fitted-run.lock")):
        if not (run / "fit_report.json").is_file():
            main(baseline("fit", "--trainer.max_epochs", "2", "--run_dir", str(run), "--test_each_epoch", "true",
                          "--seed_everything", str(FITTED_SEED)))
    return run
