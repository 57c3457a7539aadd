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
from sklearn.preprocessing import StandardScaler

from musicvae.clustering.clusterers import NOISE
from musicvae.metric_registry import of_kind

INTERNAL = of_kind("internal")  # silhouette, Calinski-Harabasz, Davies-Bouldin
INPUT = of_kind("input")  # the trial's clustering scored in the inputs: comparable across trials
INPUT_SCORES = ("silhouette", "calinski_harabasz")  # what INPUT's metrics are of
DEGENERATE_SHARE = 0.9  # a clustering with this share of the tracks in one cluster is not a grouping of the collection


@dataclass(frozen=True)
class Scores:
    values: dict[str, float]
    notes: dict[str, str] = field(default_factory=dict)  # metric -> why it is NaN


def sample_rows(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of at most max_points rows (all rows when n <= max_points).

    Seeded so that every trial of a sweep is scored (and drawn) on the same
    tracks; sorted so that the sample keeps the data's order.
    """
    if max_points < 0:
        raise ValueError(f"max_points must be >= 0, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def input_metrics(inputs: list[np.ndarray], clusters: np.ndarray, rows: np.ndarray) -> Scores:
    """Silhouette and Calinski-Harabasz of a clustering in the z-scored input features, on the given rows.

    With several inputs (MFCC statistics and musicnn's features), each score is
    the mean over the inputs: every trial is scored in the same spaces, whichever it was built on.

    A trial's own silhouette is measured in its own embedding, so it cannot
    compare trials: a collapsed latent packs tracks into tight clumps and
    scores high while grouping genres badly. The same clustering scored in the
    inputs, on rows shared by every trial, can be compared across the sweep
    and is what the shipped sweeps give Optuna as its objective. Noise tracks
    (DBSCAN/HDBSCAN) score 0: both values are scaled by the share clustered;
    a degenerate clustering (DEGENERATE_SHARE of the tracks in one cluster) is
    NaN with the reason, which the searcher records as a failed point.
    """
    found = clusters[clusters != NOISE]
    if len(found) and np.bincount(found).max() >= DEGENERATE_SHARE * len(clusters):
        # One cluster of nearly every track and a few outliers apart scores a high silhouette:
        # as an objective that would steer the searcher to degenerate DBSCAN runs.
        reason = f"{DEGENERATE_SHARE:.0%}+ of the tracks in one cluster: not a grouping of the collection"
        return Scores(dict.fromkeys(INPUT, math.nan), dict.fromkeys(INPUT, reason))
    each = [internal_metrics(StandardScaler().fit_transform(x[rows]), clusters[rows], silhouette_sample=None) for x in inputs]
    clustered = float(np.mean(clusters[rows] != NOISE))  # noise scores 0, as in selection: discarding tracks must not pay
    values = {f"input_{m}": float(np.mean([s.values[m] for s in each])) * clustered for m in INPUT_SCORES}
    return Scores(values, {f"input_{m}": s.notes[m] for s in each for m in INPUT_SCORES if m in s.notes})


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


def all_metrics(embedding: np.ndarray, clusters: np.ndarray, labels: np.ndarray | None, silhouette_sample: int | None = 10000, seed: int = 0) -> Scores:
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
