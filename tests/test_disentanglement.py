from __future__ import annotations

import math

import numpy as np
import pytest

from musicvae.evaluation.disentanglement import analyse_latents, gaussian_total_correlation


def correlated(n: int, r: float, seed: int = 0) -> np.ndarray:
    """Two unit-variance dimensions with correlation r, then two independent ones."""
    rng = np.random.default_rng(seed)
    a, b, c, d = rng.normal(size=(4, n))
    return np.c_[a, r * a + math.sqrt(1 - r**2) * b, c, d]


def test_correlation_and_total_correlation_of_a_known_gaussian() -> None:
    z = correlated(200_000, 0.8)
    report = analyse_latents(z)
    assert report.correlation[0, 1] == pytest.approx(0.8, abs=0.01)
    # pairs (0,1)=0.8 and five pairs ~0: mean |r| over the six pairs ~ 0.8/6
    assert report.mean_abs_correlation == pytest.approx(0.8 / 6, abs=0.01)
    # TC of a bivariate Gaussian with correlation r is -0.5 log(1 - r^2)
    assert report.total_correlation == pytest.approx(-0.5 * math.log(1 - 0.8**2), abs=0.01)
    assert analyse_latents(correlated(200_000, 0.0)).total_correlation == pytest.approx(0.0, abs=0.005)


def test_active_units_count_dimensions_that_vary() -> None:
    rng = np.random.default_rng(0)
    z = np.c_[rng.normal(size=(1000, 3)), rng.normal(0, 0.05, (1000, 2))]  # variance 0.0025 < 0.01: collapsed
    report = analyse_latents(z)
    assert report.active.tolist() == [True, True, True, False, False]
    assert report.metrics()["latent_active_units"] == 3
    assert math.isfinite(report.mean_abs_correlation)  # over the active dimensions only


def test_kl_per_dimension_is_zero_for_the_prior_and_present_only_for_a_vae() -> None:
    n = 500
    prior_like = analyse_latents(np.zeros((n, 2)), np.zeros((n, 2)))  # q(z|x) = N(0, 1) for every track
    assert prior_like.kl_per_dim == pytest.approx([0.0, 0.0])
    informative = analyse_latents(np.c_[np.full(n, 2.0), np.zeros(n)], np.full((n, 2), math.log(0.25)))
    # KL(N(2, 0.25) || N(0, 1)) = 0.5 (0.25 + 4 - 1 - log 0.25)
    assert informative.kl_per_dim[0] == pytest.approx(0.5 * (0.25 + 4 - 1 - math.log(0.25)))
    assert analyse_latents(np.random.default_rng(0).normal(size=(n, 2))).kl_per_dim is None


def test_mutual_information_with_genre_finds_the_informative_dimension() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 300)
    z = np.c_[labels * 3.0 + rng.normal(size=900), rng.normal(size=900)]
    report = analyse_latents(z, labels=labels)
    assert report.mi_with_labels[0] > 0.8 and report.mi_with_labels[1] < 0.05
    assert report.metrics()["latent_mi_genre_max"] == pytest.approx(report.mi_with_labels[0])
    assert analyse_latents(z).mi_with_labels is None


def test_constant_dimensions_do_not_break_anything() -> None:
    z = np.c_[np.random.default_rng(0).normal(size=(100, 2)), np.ones(100)]
    report = analyse_latents(z)
    assert np.isnan(report.correlation[2]).all() and math.isfinite(report.total_correlation)
    assert gaussian_total_correlation(np.ones((10, 3))) == 0.0
    assert report.to_dict()["correlation"][2][0] is None  # JSON-able: NaN becomes null
