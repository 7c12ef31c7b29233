from types import SimpleNamespace

import numpy as np
import pytest

from fer_zoo.models.landmark_pretrain import mean_shape_nme


def _data(points, found=None, side=100):
    return SimpleNamespace(
        images=np.zeros((len(points), side, side, 1), np.uint8),
        manifest=SimpleNamespace(landmarks=np.asarray(points, np.float32)),
        landmark_found=None if found is None else np.asarray(found),
    )


def test_mean_shape_nme_known_answer():
    shape = np.random.default_rng(0).uniform(10, 90, (68, 2)).astype(np.float32)
    shape[36], shape[45] = (30, 40), (70, 40)  # inter-ocular distance 40 px
    # train: the shape shifted by +-5 px in x (mean = shape) plus a no-face row that must be ignored
    train = _data([shape + [5, 0], shape - [5, 0], np.full((68, 2), 1e3)], found=[True, True, False])
    assert mean_shape_nme(train, _data([shape])) == pytest.approx(0.0, abs=1e-6)
    # every val point 4 px off: NME = 4 / 40
    assert mean_shape_nme(train, _data([shape + [0, 4]])) == pytest.approx(0.1, rel=1e-5)
