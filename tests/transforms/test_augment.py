import numpy as np
import torch

from fer_zoo.landmarks import FLIP_68, hflip_landmarks
from fer_zoo.transforms import FERTransform


def test_flip_permutation_is_an_involution_and_swaps_eyes():
    assert (FLIP_68[FLIP_68] == np.arange(68)).all()
    assert FLIP_68[36] == 45 and FLIP_68[48] == 54 and FLIP_68[30] == 30 and FLIP_68[0] == 16


def test_hflip_keeps_semantics():
    points = np.zeros((68, 2), np.float32)
    points[36] = [10, 20]  # image-left eye outer corner
    points[45] = [50, 20]
    flipped = hflip_landmarks(points, 64)
    # After mirroring, index 36 is again the image-left outer corner: it came from 45.
    np.testing.assert_allclose(flipped[36], [14, 20])
    np.testing.assert_allclose(flipped[45], [54, 20])


def test_landmarks_move_with_the_image_and_keep_their_count():
    image = np.zeros((64, 64, 3), np.uint8)
    points = np.random.default_rng(0).uniform(0, 64, (68, 2)).astype(np.float32)
    points[0] = [-5, 30]  # outside the image: must survive (remove_invisible=False)
    y, x = int(points[10, 1]), int(points[10, 0])
    image[y, x] = 255
    transform = FERTransform(128, "light", hflip=0.0, mean=(0, 0, 0), std=(1, 1, 1))
    for _ in range(5):
        out = transform({"image": image, "label": 0, "index": 0, "landmarks": points})
        assert out["landmarks"].shape == (68, 2) and out["image"].shape == (3, 128, 128)
        bright = torch.nonzero(out["image"][0] > 0.05).float()
        if len(bright):  # the marked pixel lands where its landmark went
            assert (bright.mean(0).flip(0) - out["landmarks"][10]).abs().max() < 3.5


def test_resize_scales_landmarks():
    points = np.array([[16.0, 32.0]] * 68, np.float32)
    out = FERTransform(128, "none")(
        {"image": np.zeros((64, 64, 3), np.uint8), "label": 0, "index": 0, "landmarks": points}
    )
    np.testing.assert_allclose(out["landmarks"][0].numpy(), [32, 64], atol=1e-4)
