"""Clustering quality: internal metrics (no labels) and external ones (labels, evaluation only).

scikit-learn's implementations are used throughout; purity is the one metric
sklearn lacks and is computed from its contingency matrix.

Noise (label -1 from DBSCAN/HDBSCAN) is handled the same way everywhere:

* internal metrics (silhouette, Calinski-Harabasz, Davies-Bouldin) score the
  clusters that were found, on the points in them; the noise fraction is
  reported beside them, since a clusterer can look tidy by discarding half
  the tracks;
* ARI and NMI count all noise as one more group (a track called noise was not
  put with its genre-mates), and purity counts every noise track as wrong.

A metric that is undefined (a single cluster, every track noise, one cluster
per track) is NaN with the reason recorded, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as skm
from sklearn.metrics.cluster import contingency_matrix

from musicvae.clustering import NOISE

INTERNAL = ("silhouette", "calinski_harabasz", "davies_bouldin")
EXTERNAL = ("ari", "nmi", "purity")


@dataclass(frozen=True)
class Scores:
    values: dict[str, float]
    notes: dict[str, str] = field(default_factory=dict)  # metric -> why it is NaN


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of tracks whose cluster's majority label is their own label; noise tracks count as wrong."""
    found = clusters != NOISE
    if not found.any():
        return 0.0
    table = contingency_matrix(labels[found], clusters[found])
    return float(table.max(axis=0).sum() / len(labels))


def internal_metrics(embedding: np.ndarray, clusters: np.ndarray, silhouette_sample: int | None = 10000, seed: int = 0) -> Scores:
    """Silhouette, Calinski-Harabasz, Davies-Bouldin on the embedding the clusterer saw (noise left out).

    Silhouette is O(n^2); above ``silhouette_sample`` tracks it is estimated on
    a seeded sample, so large collections stay fast and runs stay comparable.
    """
    found = clusters != NOISE
    x, c = embedding[found], clusters[found]
    k = len(np.unique(c))
    reason = None
    if not found.any():
        reason = "every track is noise"
    elif k < 2:
        reason = "a single cluster: these metrics compare clusters"
    elif k > len(c) - 1:
        reason = "one cluster per track"
    if reason:
        return Scores({name: math.nan for name in INTERNAL}, {name: reason for name in INTERNAL})
    sample = silhouette_sample if silhouette_sample and len(c) > silhouette_sample else None
    return Scores(
        {
            "silhouette": float(skm.silhouette_score(x, c, sample_size=sample, random_state=seed)),
            "calinski_harabasz": float(skm.calinski_harabasz_score(x, c)),
            "davies_bouldin": float(skm.davies_bouldin_score(x, c)),
        }
    )


def external_metrics(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """ARI, NMI (noise as one group: sklearn treats -1 as just another label) and purity (noise wrong)."""
    return {
        "ari": float(skm.adjusted_rand_score(labels, clusters)),
        "nmi": float(skm.normalized_mutual_info_score(labels, clusters)),
        "purity": purity(labels, clusters),
    }


def all_metrics(
    embedding: np.ndarray, clusters: np.ndarray, labels: np.ndarray | None, silhouette_sample: int | None = 10000, seed: int = 0
) -> Scores:
    """Every metric for one clustering, plus the clusters found, the noise fraction and the largest cluster's share.

    The largest share flags degenerate clusterings that internal metrics
    reward: DBSCAN splitting a few outliers from one cluster of 99% of the
    tracks has a high silhouette and says nothing about the collection.
    """
    scores = internal_metrics(embedding, clusters, silhouette_sample, seed)
    found = clusters[clusters != NOISE]
    values = {
        **scores.values,
        "clusters_found": float(len(np.unique(found))),
        "noise_fraction": float(np.mean(clusters == NOISE)),
        "largest_cluster": float(np.bincount(found).max() / len(clusters)) if len(found) else 0.0,
    }
    if labels is not None:
        values.update(external_metrics(labels, clusters))
    return Scores(values, scores.notes)
