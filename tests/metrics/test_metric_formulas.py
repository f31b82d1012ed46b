"""The metrics' math against closed forms and direct computations (no feature network involved)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from stylegan.metrics.feature_stats import FeatureStats
from stylegan.metrics.frechet import frechet_distance
from stylegan.metrics.inception_score import inception_score
from stylegan.metrics.kernel_distance import kernel_distance
from stylegan.metrics.path_length import PathLengthBatch, filtered_mean, path_distances, slerp
from stylegan.metrics.precision_recall import precision_recall


def _random_cov(rng, d):
    a = rng.standard_normal((d, 2 * d))
    return a @ a.T / (2 * d)


def test_fid_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = np.square(mu1 - mu2).sum() + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_fid_equals_the_official_scipy_formula():
    """The official code: |mu1 - mu2|^2 + tr(s1 + s2 - 2 sqrtm(s1 @ s2)) with scipy.linalg.sqrtm, real part."""
    rng = np.random.default_rng(1)
    for d in (8, 64):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
        root = scipy.linalg.sqrtm(s1 @ s2)
        official = np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * np.real(root))
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(official, rel=1e-8)


def test_fid_of_a_set_with_itself_is_zero_and_stats_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 32)).astype(np.float32) * 3 + 1
    stats = FeatureStats(capture_mean_cov=True)
    for chunk in np.array_split(x, 7):
        stats.append(chunk)
    mu, sigma = stats.mean_cov()
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False, bias=True), rtol=1e-9, atol=1e-9)
    assert frechet_distance(mu, sigma, mu, sigma) <= 1e-6 * np.trace(sigma)
    shifted = FeatureStats(capture_mean_cov=True)
    shifted.append(x + 0.5)
    assert frechet_distance(*shifted.mean_cov(), mu, sigma) == pytest.approx(0.25 * 32, rel=1e-6)


def test_fid_refuses_mismatched_or_nonfinite_statistics():
    with pytest.raises(ValueError, match="dimensions"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="not finite"):
        frechet_distance(np.full(3, np.nan), np.eye(3), np.zeros(3), np.eye(3))


def _direct_mmd2(x, y):
    n = x.shape[1]
    k = lambda a, b: (a @ b.T / n + 1) ** 3  # noqa: E731
    m = x.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = lambda a: (a.sum() - np.trace(a)) / (m * (m - 1))  # noqa: E731
    return off(kxx) + off(kyy) - 2 * kxy.mean()


def test_kid_equals_the_direct_unbiased_mmd_when_one_subset_covers_the_sets():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 10))
    y = rng.standard_normal((60, 10)) * 1.3 + 0.2
    assert kernel_distance(x, y, num_subsets=1, max_subset_size=60) == pytest.approx(_direct_mmd2(x, y), rel=1e-10)
    # several subsets of the full sets: still the same number (each subset is a permutation of the whole set)
    assert kernel_distance(x, y, num_subsets=5, max_subset_size=1000) == pytest.approx(_direct_mmd2(x, y), rel=1e-9)


def test_kid_is_seeded_and_near_zero_for_one_distribution():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((1500, 8)), rng.standard_normal((1500, 8))
    a = kernel_distance(x, y, num_subsets=10, seed=1)
    assert a == kernel_distance(x, y, num_subsets=10, seed=1)
    assert a != kernel_distance(x, y, num_subsets=10, seed=2)
    assert abs(a) < 5e-3 < kernel_distance(x, y + 0.5, num_subsets=10, seed=1)


def test_precision_recall_known_answers():
    rng = np.random.default_rng(5)
    reals = rng.uniform(0, 1, (100, 4))
    far = rng.uniform(0, 0.1, (100, 4)) + 100.0
    both = precision_recall(torch.tensor(np.concatenate([reals, far])), torch.tensor(reals))
    assert both == {"precision": 0.5, "recall": 1.0}
    same = precision_recall(torch.tensor(reals), torch.tensor(reals))
    assert same == {"precision": 1.0, "recall": 1.0}
    apart = precision_recall(torch.tensor(far), torch.tensor(reals))
    assert apart == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_equals_a_brute_force_knn_computation():
    rng = np.random.default_rng(6)
    reals = rng.standard_normal((300, 8)).astype(np.float16).astype(np.float64)
    fakes = (rng.standard_normal((250, 8)) * 1.4 + 0.3).astype(np.float16).astype(np.float64)

    def inside(manifold, probes, k=3):
        d_mm = np.linalg.norm(manifold[:, None] - manifold[None], axis=2)
        radii = np.sort(d_mm, axis=1)[:, k]
        d_pm = np.linalg.norm(probes[:, None] - manifold[None], axis=2)
        return float((d_pm <= radii[None]).any(axis=1).mean())

    got = precision_recall(torch.tensor(fakes), torch.tensor(reals), row_batch=64)
    assert got["precision"] == pytest.approx(inside(reals, fakes), abs=2 / 250)  # float16 distances: <= 2 flips
    assert got["recall"] == pytest.approx(inside(fakes, reals), abs=2 / 300)
    assert 0.2 < got["precision"] < 0.95 and 0.2 < got["recall"] < 1.0


def test_inception_score_known_values():
    k = 10
    one_hot = np.eye(k)[np.arange(1000) % k]
    mean, std = inception_score(one_hot)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0, abs=1e-9)
    assert inception_score(np.full((100, k), 1 / k)) == pytest.approx((1.0, 0.0))
    # the official formula on random probabilities
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(k) * 0.3, size=200)
    parts = np.array_split(p, 10)
    scores = [np.exp(np.mean(np.sum(q * (np.log(q) - np.log(q.mean(0, keepdims=True))), 1))) for q in parts]
    assert inception_score(p) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-12)
    with pytest.raises(ValueError, match="num_splits"):
        inception_score(p[:5])


class LinearG(torch.nn.Module):
    """mapping: z -> s_map * z; synthesis: w -> s_syn * w reshaped to an image: path lengths are closed forms."""

    def __init__(self, d: int = 12, s_map: float = 0.5, s_syn: float = 0.5) -> None:
        super().__init__()
        self.d, self.s_map, self.s_syn = d, s_map, s_syn
        self.register_buffer("w_avg", torch.zeros(d))

    def mapping(self, z, c=None):
        return (self.s_map * z)[:, None, :].repeat(1, 2, 1)

    def synthesis(self, ws, lod=0.0, noise_mode="none", noise=None):
        return (self.s_syn * ws[:, 0]).view(-1, 3, 2, 2)


def _flatten(img):
    return img.flatten(1)


def test_path_length_of_a_linear_generator_is_the_closed_form():
    G = LinearG()
    g = torch.Generator().manual_seed(0)
    z0, z1, t = torch.randn(64, 12, generator=g), torch.randn(64, 12, generator=g), torch.rand(64, generator=g)
    batch = PathLengthBatch(z0=z0, z1=z1, t=t, c=None, noise=None)
    scale = 127.5 * G.s_syn * G.s_map  # [-1, 1] -> [0, 255], then the two linear maps
    # W: lerp, so the image moves by eps * scale * (z1 - z0)
    w_full = path_distances(G, _flatten, batch, "w", "full")
    np.testing.assert_allclose(w_full.numpy(), (scale ** 2 * (z1 - z0).square().sum(1)).numpy(), rtol=2e-2)
    # Z: slerp on the unit sphere moves at the angle between z0 and z1 per unit t
    angle = torch.acos((z0 / z0.norm(dim=1, keepdim=True) * z1 / z1.norm(dim=1, keepdim=True)).sum(1))
    z_full = path_distances(G, _flatten, batch, "z", "full")
    np.testing.assert_allclose(z_full.numpy(), (127.5 * G.s_syn * G.s_map * angle).square().numpy(), rtol=2e-2)
    z_end = path_distances(G, _flatten, batch, "z", "end")
    np.testing.assert_allclose(z_end.numpy(), z_full.numpy(), rtol=2e-2)  # constant speed along a great circle


def test_slerp_endpoints_and_filtered_mean():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    torch.testing.assert_close(slerp(a, b, torch.tensor([[0.0]])), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(slerp(a, b, torch.tensor([[0.5]])), torch.tensor([[math.sqrt(0.5)] * 2]))
    d = np.concatenate([np.arange(1, 99, dtype=np.float64), [1e9, -1e9]])
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    assert filtered_mean(d) == pytest.approx(d[(d >= lo) & (d <= hi)].mean())
    assert filtered_mean(d) < 100
