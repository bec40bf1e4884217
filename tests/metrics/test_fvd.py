"""Fréchet distance against scipy, 16-frame chunking, and the per-batch feature accumulator."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from syncvp.metrics.fvd import FeatureAccumulator, frechet_distance, split_chunks, video_features
from syncvp.metrics.i3d import preprocess


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The usual float64 formula with scipy's sqrtm of the product."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cross = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(cross))


def feature_sets(seed: int, n: int = 120, d: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d))
    a = rng.normal(size=(n, d)) @ mix
    b = rng.normal(size=(n + 7, d)) @ (mix + 0.3 * rng.normal(size=(d, d))) + 0.5
    return a, b


@pytest.mark.parametrize("seed", [0, 1])
def test_frechet_matches_scipy_sqrtm(seed):
    a, b = feature_sets(seed)
    want = scipy_frechet(a, b)
    assert abs(frechet_distance(a, b) - want) <= 1e-3 * abs(want)
    assert abs(frechet_distance(a, b, dtype=torch.float32) - want) <= 1e-3 * abs(want)


def test_frechet_identical_symmetric_and_mean_shift():
    a, b = feature_sets(2)
    scale = np.trace(np.cov(a, rowvar=False))
    assert abs(frechet_distance(a, a)) < 1e-9 * scale
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    shift = np.linspace(-1, 1, a.shape[1])
    assert frechet_distance(a, a + shift) == pytest.approx(float((shift**2).sum()), rel=1e-8)
    # rank-deficient covariances (fewer samples than dimensions, as with 400-d logits) stay finite
    few = np.random.default_rng(3).normal(size=(10, 40))
    assert np.isfinite(frechet_distance(few, few + 1.0))
    with pytest.raises(ValueError, match="at least 2 samples"):
        frechet_distance(a[:1], b)


def test_chunks_follow_torch_split_and_stack_chunk_major():
    video = torch.randint(0, 256, (2, 1, 30, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert [c.shape[2] for c in split_chunks(video)] == [16, 14]

    def extractor(clip):  # [b, 3, t, 224, 224] -> [b, 2]: mean value and frame count
        return torch.stack([clip.mean(dim=(1, 2, 3, 4)), torch.full((clip.shape[0],), float(clip.shape[2]))], 1)

    feats = video_features(extractor, video, batch_size=1)
    assert feats.shape == (4, 2)
    assert feats[:, 1].tolist() == [16, 16, 14, 14]
    for row, (b, start) in enumerate([(0, 0), (1, 0), (0, 16), (1, 16)]):
        clip = preprocess(video[b : b + 1, :, start : start + 16])
        assert feats[row, 0] == pytest.approx(float(clip.mean()), abs=1e-6)


def test_accumulator_is_order_free_and_strict():
    a, b = feature_sets(4, n=60)
    one, two = FeatureAccumulator(), FeatureAccumulator()
    one.add(0, real=a[:30], fake=b[:30])
    one.add(1, real=a[30:], fake=b[30:])
    two.add(1, fake=b[30:])
    two.add(1, real=a[30:])
    two.add(0, real=a[:30], fake=b[:30])
    assert one.distance() == two.distance() == pytest.approx(frechet_distance(b, a), rel=1e-6)
    with pytest.raises(ValueError, match="already added"):
        one.add(0, real=a[:30])
    three = FeatureAccumulator()
    three.add(0, real=a)
    three.add(1, fake=b)
    with pytest.raises(ValueError, match="different batches"):
        three.distance()
