from __future__ import annotations

import math

import numpy as np
import pytest

from musicvae.clustering import cluster
from musicvae.metrics import all_metrics, external_metrics, internal_metrics, purity


def test_purity_hand_computed() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    clusters = np.array([0, 0, 1, 1, 1, 1, 2, 0])
    # cluster 0 = {0,0,2}: majority 2 of 3; cluster 1 = {0,1,1,1}: 3; cluster 2 = {2}: 1 -> 6/8
    assert purity(labels, clusters) == pytest.approx(6 / 8)


def test_perfect_and_permuted_clusterings() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    scores = external_metrics(labels, np.array([2, 2, 0, 0, 1, 1]))
    assert scores == pytest.approx({"ari": 1.0, "nmi": 1.0, "purity": 1.0})


def test_internal_metrics_on_separated_blobs() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2))])
    clusters = cluster(x, "kmeans", 2)
    scores = internal_metrics(x, clusters)
    assert scores["silhouette"] > 0.9 and scores["davies_bouldin"] < 0.1 and scores["calinski_harabasz"] > 1000
    assert external_metrics(np.repeat([0, 1], 50), clusters)["ari"] == pytest.approx(1.0)
    assert (cluster(x, "agglomerative", 2) == clusters).all() or (cluster(x, "agglomerative", 2) == 1 - clusters).all()


def test_degenerate_clusterings_give_nan_not_an_exception() -> None:
    x = np.random.default_rng(0).normal(size=(10, 3))
    one_cluster = internal_metrics(x, np.zeros(10, dtype=int))
    all_singletons = internal_metrics(x, np.arange(10))
    assert all(math.isnan(v) for v in [*one_cluster.values(), *all_singletons.values()])


def test_silhouette_is_sampled_and_seeded_on_large_n() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 4))
    clusters = cluster(x, "kmeans", 3)
    a = internal_metrics(x, clusters, silhouette_sample=500, seed=7)["silhouette"]
    b = internal_metrics(x, clusters, silhouette_sample=500, seed=7)["silhouette"]
    full = internal_metrics(x, clusters, silhouette_sample=None)["silhouette"]
    assert a == b and abs(a - full) < 0.05


def test_label_metrics_only_with_labels() -> None:
    x = np.random.default_rng(0).normal(size=(20, 2))
    clusters = cluster(x, "kmeans", 2)
    assert "ari" not in all_metrics(x, clusters, None)
    assert {"ari", "nmi", "purity"} <= set(all_metrics(x, clusters, np.repeat([0, 1], 10)))
