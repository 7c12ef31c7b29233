import numpy as np
import pytest

from fer_zoo.datasets.synthetic import SyntheticFER
from fer_zoo.landmarks import (
    FLIP_19,
    GROUPS_68,
    convert,
    flip_permutation,
    heatmaps,
    hflip_landmarks,
    to_aflw19,
)


def test_aflw19_flip_agrees_with_the_68_point_flip():
    points = np.random.default_rng(0).uniform(0, 100, (68, 2)).astype(np.float32)
    flipped_then_mapped = to_aflw19(hflip_landmarks(points, 100.0))
    mapped_then_flipped = hflip_landmarks(to_aflw19(points), 100.0)
    assert np.allclose(flipped_then_mapped, mapped_then_flipped, atol=1e-4)
    assert np.array_equal(FLIP_19[FLIP_19], np.arange(19)) and flip_permutation(19) is FLIP_19


def test_convert_shapes_and_errors():
    mesh = np.random.default_rng(0).uniform(0, 50, (2, 478, 3))
    assert convert(mesh, 68).shape == (2, 68, 3) and convert(mesh, 19).shape == (2, 19, 3)
    assert np.allclose(convert(mesh, 19)[:, 7], mesh[:, 468])  # right eye centre = right iris centre
    with pytest.raises(ValueError, match="cannot map 5"):
        convert(np.zeros((5, 2)), 68)


def test_heatmap_peak_and_weight_map():
    maps, weights = heatmaps(np.array([[10.0, 20.0], [-5.0, 3.0]]), size=56, image_size=224)
    assert np.unravel_index(maps[0].argmax(), maps[0].shape) == (5, 2)  # (y, x) = (20 / 4, 10 / 4)
    assert maps[0].max() == pytest.approx(1.0) and maps[1].max() == 0.0  # outside the map: empty
    assert weights[0, 5, 2] == 10.0 and weights[0, 30, 30] == 1.0 and (weights[1] == 1.0).all()
    assert (weights[0] == 10.0).sum() >= 9  # the 3x3 dilation


@pytest.fixture(scope="module")
def faces():
    data = SyntheticFER(split="val", num_samples=12, image_size=128, seed=3)
    return [(data.image(i), np.asarray(data.manifest.landmarks[i])) for i in range(len(data))]


def test_mediapipe_to_68_matches_exact_landmarks_and_is_flip_consistent(faces):
    from fer_zoo.datasets.mediapipe_landmarks import DetectorSettings, MeshDetector

    detector = MeshDetector(DetectorSettings(pads=(0.0,)))
    inner = [i for g, r in GROUPS_68.items() if g != "jaw" for i in r]
    errors, mirror = [], []
    for image, exact in faces:
        points, confidence, attempt = detector.detect(image)
        if attempt < 0:
            continue
        assert 0.0 < confidence <= 1.0
        ours = convert(points[:, :2], 68)
        iod = np.linalg.norm(exact[36] - exact[45])
        errors.append(np.linalg.norm(ours - exact, axis=1)[inner].mean() / iod)
        flipped, _, hit = detector.detect(np.ascontiguousarray(image[:, ::-1]))
        if hit >= 0:
            back = hflip_landmarks(convert(flipped[:, :2], 68), image.shape[1])
            mirror.append(np.linalg.norm(back - ours, axis=1).mean() / iod)
    detector.close()
    assert len(errors) >= 9, "FaceMesh should find most synthetic faces"
    # A wrong index (e.g. swapped eyes or lips) costs far more than 0.2 inter-ocular distances.
    assert np.median(errors) < 0.15 and np.median(mirror) < 0.08
