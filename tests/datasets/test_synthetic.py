import numpy as np

from fer_zoo.datasets.synthetic import SyntheticFER, face_landmarks, sample_identity


def test_deterministic_by_seed_and_split():
    a = SyntheticFER(split="train", num_samples=12, seed=3)
    b = SyntheticFER(split="train", num_samples=12, seed=3)
    c = SyntheticFER(split="val", num_samples=12, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.manifest.landmarks, b.manifest.landmarks)
    assert not np.array_equal(a.images, c.images)


def test_landmarks_are_the_drawn_points():
    data = SyntheticFER(split="test", num_samples=40, image_size=64)
    points = data.manifest.landmarks
    assert points.shape == (40, 68, 2)
    inside = ((points >= 0) & (points <= 64)).all(-1).mean()
    assert inside > 0.97
    # The mouth region differs from the background: lips are drawn where the points say.
    assert data.labels.min() >= 0 and data.labels.max() <= 6


def test_geometry_follows_the_expression():
    identity = sample_identity(np.random.default_rng(0))
    identity["quirk"] = np.zeros_like(identity["quirk"])
    neutral = face_landmarks(identity, np.zeros(10))
    smile = face_landmarks(identity, np.array([0, 0, 0, 0, 0, 1.0, 0, 0, 0, 0]))
    surprise = face_landmarks(identity, np.array([0.9, 0.9, 0, 0, 0.9, 0, 1.0, -0.45, 0, 0]))
    # Lip corners (48, 54) rise (smaller y) in a smile.
    assert smile[48, 1] < neutral[48, 1] and smile[54, 1] < neutral[54, 1]
    # Surprise raises the brows and opens the mouth (inner lips 62 / 66 apart).
    assert surprise[19, 1] < neutral[19, 1]
    assert (surprise[66, 1] - surprise[62, 1]) > (neutral[66, 1] - neutral[62, 1]) + 0.1
