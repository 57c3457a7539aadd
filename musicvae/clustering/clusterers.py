"""Clusterers applied to an embedding (scikit-learn, seeded).

K-Means, agglomerative and a Gaussian mixture are told how many clusters to
make; DBSCAN and HDBSCAN find the number themselves and may call points
noise (label -1). Noise is kept explicit: :class:`Clustering` carries it, and
:mod:`musicvae.evaluation.metrics` says how each metric treats it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from musicvae.config.params import K_CLUSTERERS

NOISE = -1
AGGLOMERATIVE_MAX_TRACKS = 30000  # scipy's linkage needs the n(n-1)/2 distances: 3.6 GB at 30k tracks


@dataclass(frozen=True)
class Clustering:
    labels: np.ndarray  # one per row; NOISE (-1) for points no cluster claims
    params: dict[str, float] = field(default_factory=dict)  # what was chosen on the data, e.g. DBSCAN's eps
    fitted: Any = field(default=None, repr=False)  # the fitted scikit-learn estimator, from which a pipeline assigns new points


def kdistance_eps(embedding: np.ndarray, k: int) -> float:
    """DBSCAN's radius from the knee of the sorted k-nearest-neighbour distance curve.

    The usual recipe (Ester et al. 1996): sort every point's distance to its
    k-th neighbour and take the distance where the curve bends, here the
    point farthest from the chord joining the curve's ends.
    """
    k = min(k, len(embedding) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    curve = np.sort(distances[:, -1])
    x = np.linspace(0.0, 1.0, len(curve))
    span = curve[-1] - curve[0]
    if span <= 0:
        return float(curve[-1]) or 1e-6
    y = (curve - curve[0]) / span
    knee = int(np.argmax(x - y))  # the chord is y = x after scaling; the knee lies farthest below it
    return float(max(curve[knee], 1e-6))


def cluster(
    embedding: np.ndarray,
    method: str,
    n_clusters: int | None = None,
    seed: int = 0,
    linkage: str = "ward",
    eps: float | None = None,
    min_samples: int = 5,
) -> Clustering:
    """Cluster assignments, one per row.

    K-Means uses n_init=10, as the study and its reference figures do.
    """
    if method == "agglomerative" and len(embedding) > AGGLOMERATIVE_MAX_TRACKS:
        raise ValueError(
            f"agglomerative clustering of {len(embedding)} tracks needs O(n^2) memory; "
            f"use it on at most {AGGLOMERATIVE_MAX_TRACKS} tracks, or K-Means/GMM/HDBSCAN"
        )
    if method in K_CLUSTERERS and n_clusters is None:
        raise ValueError(f"{method} needs n_clusters")
    if method == "kmeans":
        estimator = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)
    elif method == "agglomerative":
        estimator = AgglomerativeClustering(n_clusters=n_clusters, linkage=linkage)
    elif method == "gmm":
        estimator = GaussianMixture(n_components=n_clusters, covariance_type="full", n_init=3, random_state=seed, reg_covar=1e-4)
    elif method == "dbscan":
        eps = eps if eps is not None else kdistance_eps(embedding, min_samples)
        labels, fitted = _fit(DBSCAN(eps=eps, min_samples=min_samples), embedding)
        return Clustering(labels, {"eps": eps}, fitted)
    elif method == "hdbscan":
        estimator = HDBSCAN(min_samples=min_samples, min_cluster_size=max(min_samples, 5), copy=True)
    else:
        raise ValueError(f"unknown clusterer '{method}'")
    labels, fitted = _fit(estimator, embedding)
    return Clustering(labels, fitted=fitted)


def _fit(estimator: Any, embedding: np.ndarray) -> tuple[np.ndarray, Any]:
    return estimator.fit_predict(embedding), estimator


def resample_stability(embedding: np.ndarray, method: str, n_clusters: int | None, seed: int = 0, share: float = 0.8, **options: object) -> float:
    """ARI between the clusterings of two seeded row subsamples, on the rows both hold (Ben-Hur et al. 2002).

    A grouping the data really has comes back when a fifth of the tracks is
    left out; one the clusterer imposes (K-Means cutting a structureless
    cloud, Ward's tree on noise) moves. This is what a seed cannot show for a
    deterministic method: raw features + agglomerative give the same clusters
    for every seed, structure or none. ``options`` go to :func:`cluster`
    (DBSCAN gets the eps chosen on all rows, so both halves use one radius).
    """
    n = len(embedding)
    size = max(2, int(round(share * n)))
    rng = np.random.default_rng([seed, 7919])  # the trial's seed, apart from the clusterer's own stream
    picks = [np.sort(rng.choice(n, size=size, replace=False)) for _ in range(2)]
    labels = []
    for i, rows in enumerate(picks):
        full = np.full(n, -2)  # -2: not in this subsample
        full[rows] = cluster(embedding[rows], method, n_clusters, seed=seed + i + 1, **options).labels
        labels.append(full)
    both = (labels[0] != -2) & (labels[1] != -2)
    return ari(labels[0][both], labels[1][both])


def ari(a: np.ndarray, b: np.ndarray) -> float:
    """The adjusted Rand index of two labelings (noise, -1, is one more group), as sklearn's ``adjusted_rand_score``.

    From the contingency table by ``np.bincount``: consensus compares every
    pair of a sweep's clusterings (thousands), and sklearn's input checks
    alone cost more than the arithmetic.
    """
    return ari_of_codes(np.unique(a, return_inverse=True)[1], np.unique(b, return_inverse=True)[1])


def ari_of_codes(ia: np.ndarray, ib: np.ndarray) -> float:
    """ARI of two labelings already coded 0..k-1."""
    table = np.bincount(ia * (ib.max() + 1) + ib, minlength=(ia.max() + 1) * (ib.max() + 1)).astype(np.float64)
    table = table.reshape(ia.max() + 1, ib.max() + 1)
    pairs = lambda counts: float((counts * (counts - 1)).sum() / 2)  # noqa: E731
    index, rows, cols, total = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0)), len(ia) * (len(ia) - 1) / 2
    expected = rows * cols / total
    maximum = (rows + cols) / 2
    if maximum == expected:  # both labelings trivial in the same way (one cluster, or all singletons): identical
        return 1.0
    return (index - expected) / (maximum - expected)


def mean_pairwise_ari(clusterings: list[np.ndarray]) -> float:
    pairs = list(itertools.combinations(clusterings, 2))
    return float(np.mean([ari(a, b) for a, b in pairs])) if pairs else math.nan
