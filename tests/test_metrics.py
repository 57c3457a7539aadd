from __future__ import annotations

import math

import numpy as np
import pytest

from musicvae.clustering.clusterers import NOISE, cluster, kdistance_eps
from musicvae.evaluation.metrics import all_metrics, external_metrics, internal_metrics, purity


def two_blobs(n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 0.1, (n, 2)), rng.normal(5, 0.1, (n, 2))])


def test_purity_hand_computed() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    clusters = np.array([0, 0, 1, 1, 1, 1, 2, 0])
    # cluster 0 = {0,0,2}: majority 2 of 3; cluster 1 = {0,1,1,1}: 3; cluster 2 = {2}: 1 -> 6/8
    assert purity(labels, clusters) == pytest.approx(6 / 8)


def test_purity_counts_noise_as_wrong() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    clusters = np.array([0, 0, NOISE, 1, 1, NOISE, NOISE, NOISE])
    # clusters 0 = {0,0}: 2 right; 1 = {1,1}: 2 right; four noise tracks: wrong -> 4/8 (not 4/4)
    assert purity(labels, clusters) == pytest.approx(4 / 8)
    assert purity(labels, np.full(8, NOISE)) == 0.0


def test_perfect_and_permuted_clusterings() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    scores = external_metrics(labels, np.array([2, 2, 0, 0, 1, 1]))
    assert scores == pytest.approx({"ari": 1.0, "nmi": 1.0, "purity": 1.0})


def test_internal_metrics_on_separated_blobs() -> None:
    x = two_blobs()
    clusters = cluster(x, "kmeans", 2).labels
    scores = internal_metrics(x, clusters).values
    assert scores["silhouette"] > 0.9 and scores["davies_bouldin"] < 0.1 and scores["calinski_harabasz"] > 1000
    assert external_metrics(np.repeat([0, 1], 50), clusters)["ari"] == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["kmeans", "agglomerative", "gmm", "dbscan", "hdbscan"])
def test_every_clusterer_finds_two_separated_blobs(method: str) -> None:
    x = two_blobs()
    found = cluster(x, method, 2 if method in ("kmeans", "agglomerative", "gmm") else None, seed=0).labels
    clustered = found != NOISE  # density methods may leave a blob's sparse tail as noise
    assert clustered.mean() > 0.9
    assert external_metrics(np.repeat([0, 1], 50)[clustered], found[clustered])["ari"] == pytest.approx(1.0)


@pytest.mark.parametrize("linkage", ["ward", "complete", "average", "single"])
def test_agglomerative_linkage_is_used(linkage: str) -> None:
    # A chain of close points and one far point: single linkage follows the chain, ward splits it.
    x = np.concatenate([np.c_[np.arange(20) * 0.5, np.zeros(20)], [[30.0, 0.0]]])
    found = cluster(x, "agglomerative", 2, linkage=linkage).labels
    assert len(set(found)) == 2
    if linkage == "single":
        assert (found[:20] == found[0]).all() and found[20] != found[0]


def test_k_clusterers_need_k() -> None:
    with pytest.raises(ValueError, match="n_clusters"):
        cluster(two_blobs(), "kmeans", None)


def test_dbscan_eps_from_the_k_distance_knee_and_noise_is_explicit() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([two_blobs(), rng.uniform(-20, 25, (10, 2))])  # ten scattered outliers
    eps = kdistance_eps(x, 5)
    assert 0.01 < eps < 2.0  # inside-blob spacing, far below the outliers' distances
    result = cluster(x, "dbscan", min_samples=5)
    assert result.params["eps"] == pytest.approx(eps)
    assert (result.labels[100:] == NOISE).sum() >= 8 and (result.labels[:100] != NOISE).all()
    labels = np.r_[np.repeat([0, 1], 50), np.full(10, 2)]
    scores = all_metrics(x, result.labels, labels)
    assert scores.values["noise_fraction"] == pytest.approx(np.mean(result.labels == NOISE))
    assert scores.values["clusters_found"] == 2
    assert scores.values["silhouette"] > 0.9  # on the clustered points only: noise is reported, not scored as a cluster
    assert scores.values["purity"] == pytest.approx(100 / 110)  # the outliers' "genre" has no cluster: counted wrong
    given = cluster(x, "dbscan", eps=0.5, min_samples=5)
    assert given.params["eps"] == 0.5


def test_degenerate_clusterings_give_nan_with_a_reason() -> None:
    x = np.random.default_rng(0).normal(size=(10, 3))
    for clusters, reason in [(np.zeros(10, dtype=int), "single cluster"), (np.arange(10), "one cluster per track"), (np.full(10, NOISE), "noise")]:
        scores = all_metrics(x, clusters, np.repeat([0, 1], 5))
        assert all(math.isnan(scores.values[m]) for m in ("silhouette", "calinski_harabasz", "davies_bouldin"))
        assert all(reason in scores.notes[m] for m in ("silhouette", "calinski_harabasz", "davies_bouldin"))
        assert math.isfinite(scores.values["ari"]) and math.isfinite(scores.values["purity"])  # still defined


def test_silhouette_is_sampled_and_seeded_on_large_n() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 4))
    clusters = cluster(x, "kmeans", 3).labels
    a = internal_metrics(x, clusters, silhouette_sample=500, seed=7).values["silhouette"]
    b = internal_metrics(x, clusters, silhouette_sample=500, seed=7).values["silhouette"]
    full = internal_metrics(x, clusters, silhouette_sample=None).values["silhouette"]
    assert a == b and abs(a - full) < 0.05


def test_label_metrics_only_with_labels() -> None:
    x = np.random.default_rng(0).normal(size=(20, 2))
    clusters = cluster(x, "kmeans", 2).labels
    assert "ari" not in all_metrics(x, clusters, None).values
    assert {"ari", "nmi", "purity"} <= set(all_metrics(x, clusters, np.repeat([0, 1], 10)).values)


def test_agglomerative_refuses_collections_too_large_for_its_memory() -> None:
    with pytest.raises(ValueError, match="O\\(n\\^2\\) memory"):
        cluster(np.zeros((30001, 2), np.float32), "agglomerative", 2)
