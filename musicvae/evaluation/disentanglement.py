"""How the latent space is organised, without ground-truth factors.

Music has no annotated generative factors (no dSprites-style "shape, scale,
position"), so the supervised disentanglement scores (β-VAE score, MIG,
DCI) do not apply. What can be measured on any embedding:

* **mean |correlation|** between latent dimensions of the posterior means:
  a disentangled code has dimensions that vary independently;
* **active units** (Burda et al., 2016): dimensions whose posterior mean
  varies over the data, Var_x E[z_d | x] > 0.01; the rest collapsed to the prior;
* **KL per dimension**: how much information each dimension carries (VAEs only);
* **total correlation** of the aggregate posterior under a Gaussian
  approximation: 0.5 (sum_d log Σ_dd - log det Σ), zero when the dimensions
  are independent; the quantity β-TCVAE penalises;
* where labels exist, the **mutual information** between each dimension and
  the genre (evaluation only): does any single dimension carry genre?
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.feature_selection import mutual_info_classif

from musicvae.clustering.manifold import cached_array

ACTIVE_THRESHOLD = 0.01  # Burda et al.'s threshold on Var_x E[z_d | x]
MI_SAMPLE = 10000  # kNN mutual information on at most this many tracks (seeded)


@dataclass(frozen=True)
class DisentanglementReport:
    correlation: np.ndarray  # (d, d) Pearson correlation of the posterior means; NaN rows for constant dims
    variance: np.ndarray  # (d,) Var over tracks of the posterior mean
    kl_per_dim: np.ndarray | None  # (d,) mean KL(q(z_d|x) || N(0, 1)) in nats; None for deterministic embeddings
    mi_with_labels: np.ndarray | None  # (d,) I(z_d; genre) in nats; None without labels
    total_correlation: float  # nats, Gaussian estimate

    @property
    def active(self) -> np.ndarray:
        return self.variance > ACTIVE_THRESHOLD

    @property
    def mean_abs_correlation(self) -> float:
        """Mean |r| over pairs of distinct active dimensions (NaN with fewer than two)."""
        index = np.flatnonzero(self.active)
        if len(index) < 2:
            return math.nan
        block = np.abs(self.correlation[np.ix_(index, index)])
        return float(block[~np.eye(len(index), dtype=bool)].mean())

    def metrics(self) -> dict[str, float]:
        """Flat scalars for the tracking store (prefixed ``latent_``)."""
        result = {
            "latent_mean_abs_corr": self.mean_abs_correlation,
            "latent_active_units": float(self.active.sum()),
            "latent_active_fraction": float(self.active.mean()),
            "latent_total_correlation": self.total_correlation,
        }
        if self.kl_per_dim is not None:
            result["latent_kl_total"] = float(self.kl_per_dim.sum())
        if self.mi_with_labels is not None:
            result["latent_mi_genre_max"] = float(self.mi_with_labels.max())
            result["latent_mi_genre_mean"] = float(self.mi_with_labels.mean())
        return result

    def to_dict(self) -> dict[str, object]:
        """Everything, per dimension, as plain JSON-able lists."""

        def listed(values: np.ndarray | None) -> list | None:
            return None if values is None else np.where(np.isfinite(values), values, None).tolist()

        return {
            **self.metrics(),
            "variance": listed(self.variance),
            "kl_per_dim": listed(self.kl_per_dim),
            "mi_with_labels": listed(self.mi_with_labels),
            "correlation": listed(self.correlation),
        }


def correlation_matrix(z: np.ndarray) -> np.ndarray:
    """Pearson correlation; a constant dimension gets NaN (not the divide-by-zero warning np.corrcoef gives)."""
    centred = z - z.mean(axis=0)
    scale = np.sqrt((centred**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = centred / np.where(scale > 0, scale, np.nan)
    return unit.T @ unit


def gaussian_total_correlation(mu: np.ndarray, logvar: np.ndarray | None = None) -> float:
    """TC of the aggregate posterior q(z) = mean_x q(z|x), approximated by a Gaussian.

    Its covariance is Cov_x[mu] + E_x[diag σ²] (law of total covariance);
    for a Gaussian, TC = 0.5 (sum log Σ_dd - log det Σ). Dimensions that do
    not vary at all are dropped (they add nothing and would make Σ singular).
    """
    cov = np.atleast_2d(np.cov(mu, rowvar=False))
    if logvar is not None:
        cov = cov + np.diag(np.exp(logvar).mean(axis=0))
    keep = np.diag(cov) > 1e-12
    if keep.sum() < 2:
        return 0.0
    cov = cov[np.ix_(keep, keep)]
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:  # numerically singular: perfectly dependent dimensions
        return math.inf
    return float(max(0.5 * (np.log(np.diag(cov)).sum() - logdet), 0.0))


def kl_per_dimension(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    return (-0.5 * (1 + logvar - mu**2 - np.exp(logvar))).mean(axis=0)


def analyse_latents(
    mu: np.ndarray, logvar: np.ndarray | None = None, labels: np.ndarray | None = None, seed: int = 0, cache_dir: Path | None = None
) -> DisentanglementReport:
    """The report for one embedding: posterior means (and log-variances for a VAE) of every track.

    The mutual information with the labels is most of its cost, and the same for every
    clusterer of one model and seed: kept in ``cache_dir`` by content (:func:`~musicvae.clustering.manifold.cached_array`).
    """
    mu = np.asarray(mu, dtype=np.float64)
    logvar = None if logvar is None else np.asarray(logvar, dtype=np.float64)
    mi = None
    if labels is not None and len(np.unique(labels)) > 1:
        rows = np.arange(len(mu))
        if len(rows) > MI_SAMPLE:
            rows = np.sort(np.random.default_rng(seed).choice(rows, MI_SAMPLE, replace=False))
        labelled = hashlib.blake2b(np.ascontiguousarray(labels[rows]).tobytes(), digest_size=8).hexdigest()
        mi = cached_array(cache_dir, mu[rows], f"mutual_information/{labelled}/{seed}", lambda: mutual_info_classif(mu[rows], labels[rows], random_state=seed))
    return DisentanglementReport(
        correlation=correlation_matrix(mu),
        variance=mu.var(axis=0),
        kl_per_dim=None if logvar is None else kl_per_dimension(mu, logvar),
        mi_with_labels=mi,
        total_correlation=gaussian_total_correlation(mu, logvar),
    )
