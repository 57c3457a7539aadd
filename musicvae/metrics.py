"""Clustering quality: internal metrics (no labels) and external ones (labels, evaluation only).

scikit-learn's implementations are used throughout; purity is the one metric
sklearn lacks and is computed from its contingency matrix. Degenerate
clusterings (a single cluster, or one cluster per point) make the internal
metrics undefined: they come back as NaN, never as an exception.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm
from sklearn.metrics.cluster import contingency_matrix

INTERNAL = ("silhouette", "calinski_harabasz", "davies_bouldin")
EXTERNAL = ("ari", "nmi", "purity")


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of tracks whose cluster's majority label is their own label."""
    table = contingency_matrix(labels, clusters)
    return float(table.max(axis=0).sum() / table.sum())


def internal_metrics(embedding: np.ndarray, clusters: np.ndarray, silhouette_sample: int | None = 10000, seed: int = 0) -> dict[str, float]:
    """Silhouette, Calinski-Harabasz, Davies-Bouldin on the embedding the clusterer saw.

    Silhouette is O(n^2); above ``silhouette_sample`` tracks it is estimated on
    a seeded sample, so large collections stay fast and runs stay comparable.
    """
    n_clusters = len(np.unique(clusters))
    if not 2 <= n_clusters <= len(clusters) - 1:
        return {name: math.nan for name in INTERNAL}
    sample = silhouette_sample if silhouette_sample and len(clusters) > silhouette_sample else None
    return {
        "silhouette": float(skm.silhouette_score(embedding, clusters, sample_size=sample, random_state=seed)),
        "calinski_harabasz": float(skm.calinski_harabasz_score(embedding, clusters)),
        "davies_bouldin": float(skm.davies_bouldin_score(embedding, clusters)),
    }


def external_metrics(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    return {
        "ari": float(skm.adjusted_rand_score(labels, clusters)),
        "nmi": float(skm.normalized_mutual_info_score(labels, clusters)),
        "purity": purity(labels, clusters),
    }


def all_metrics(embedding: np.ndarray, clusters: np.ndarray, labels: np.ndarray | None, seed: int = 0) -> dict[str, float]:
    result = internal_metrics(embedding, clusters, seed=seed)
    if labels is not None:
        result.update(external_metrics(labels, clusters))
    return result
