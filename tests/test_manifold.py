"""What the clusterer sees: metadata-group pooling and the N2D UMAP stage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from musicvae.clustering.manifold import clustering_space, pool_groups, umap_manifold
from musicvae.config.params import TrialParams
from musicvae.config.sweep_file import SweepFileError, parse_sweep
from musicvae.data.dataset import FeatureSet, metadata_groups
from musicvae.trial import Embedded, evaluate


def test_pooling_moves_each_track_towards_its_group_mean_and_leaves_a_group_of_one_alone() -> None:
    z = np.array([[0.0, 0.0], [2.0, 4.0], [10.0, 10.0]], np.float32)
    groups = np.array([0, 0, 1])
    np.testing.assert_allclose(pool_groups(z, groups, 1.0), [[1, 2], [1, 2], [10, 10]])
    np.testing.assert_allclose(pool_groups(z, groups, 0.5), [[0.5, 1.0], [1.5, 3.0], [10, 10]])
    np.testing.assert_allclose(pool_groups(z, groups, 0.0), z)


def test_metadata_groups_fold_case_and_keep_tracks_without_a_value_apart() -> None:
    text = pd.DataFrame({"track_id": list("abcdef"), "artist": ["Nina", "nina ", None, "", "Otis", None], "album": list("xxyyzz")})
    groups, note = metadata_groups(text, ["artist"])
    assert groups[0] == groups[1]  # the same artist, however written
    assert len({groups[2], groups[3], groups[5]}) == 3 and not {groups[2], groups[3], groups[5]} & {groups[0], groups[4]}  # unknown: alone
    assert "5 groups by artist" in note and "33%" in note and "not labels" in note
    by_both, _ = metadata_groups(text, ["artist", "album"])
    assert by_both[0] == by_both[1] and len(set(by_both)) == 5
    with pytest.raises(ValueError, match=r"data.group_by: \['label'\] not in the data's metadata \(it has: artist, album\)"):
        metadata_groups(text, ["label"])


def test_the_config_refuses_grouping_by_labels_and_a_group_weight_without_groups() -> None:
    table = {"kind": "table", "path": "x.csv", "label_column": "style"}
    with pytest.raises(SweepFileError, match=r"data.group_by: \['genre_top'\] name the labels"):
        parse_sweep({"name": "x", "data": {"source": table, "group_by": ["genre_top"]}})
    with pytest.raises(SweepFileError, match=r"\['style'\] name the labels"):
        parse_sweep({"name": "x", "data": {"source": table, "group_by": ["artist", "style"]}})
    with pytest.raises(SweepFileError, match="space.group_weight: has no effect without data.group_by"):
        parse_sweep({"name": "x", "data": {"source": table}, "space": {"group_weight": [0.5, 1.0]}})
    ok = parse_sweep(
        {"name": "x", "data": {"source": table, "group_by": ["artist"]}, "space": {"manifold": "umap", "manifold_dim": [2, 5], "group_weight": [0.5, 1.0]}}
    )
    assert ok.data.group_by == ["artist"]


def test_umap_stage_is_deterministic_for_a_seed_and_cached(tmp_path) -> None:
    x, _ = make_blobs(300, n_features=8, centers=3, random_state=0)
    first = umap_manifold(x, 3, 15, 0.0, seed=1, cache_dir=tmp_path)
    assert first.shape == (300, 3) and len(list(tmp_path.glob("*.npy"))) == 1
    np.testing.assert_array_equal(umap_manifold(x, 3, 15, 0.0, seed=1), first)  # refitted without the cache: the same
    (cached,) = tmp_path.glob("*.npy")
    np.save(cached, np.zeros_like(first))  # what the cache holds is what a second trial gets, without fitting again
    np.testing.assert_array_equal(umap_manifold(x, 3, 15, 0.0, seed=1, cache_dir=tmp_path), 0)
    other = umap_manifold(x, 3, 15, 0.0, seed=2, cache_dir=tmp_path)  # another seed is another fit
    assert not np.allclose(other, 0) and len(list(tmp_path.glob("*.npy"))) == 2


def test_pooling_by_a_metadata_group_recovers_what_noisy_tracks_alone_do_not() -> None:
    """Tracks of one artist share a genre; each track alone is mostly noise. Pooling with the artist's mean finds the genres."""
    rng = np.random.default_rng(0)
    genres = np.repeat(np.arange(3), 100)
    artists = np.arange(300) // 10  # ten tracks an artist, one genre each
    centres = rng.normal(0, 2.0, (3, 6))
    x = (centres[genres] + rng.normal(0, 4.0, (300, 6))).astype(np.float32)
    ids = [f"t{i}" for i in range(300)]
    text = pd.DataFrame({"track_id": ids, "artist": [f"artist {a}" for a in artists]})
    groups, _ = metadata_groups(text, ["artist"])
    data = FeatureSet(ids, x, [f"f{i}" for i in range(6)], genres, ["a", "b", "c"], text, groups=groups)
    embedded = Embedded(x, {"fit_seconds": 0.0})
    alone = evaluate(TrialParams(model="raw", group_weight=0.0), data, embedded)
    pooled = evaluate(TrialParams(model="raw", group_weight=1.0), data, embedded)
    assert alone.metrics["ari"] < 0.3 < 0.9 < pooled.metrics["ari"]
    np.testing.assert_allclose(pooled.embedding, pool_groups(x, groups, 1.0))  # the space the clusterer saw is the trial's embedding
    assert clustering_space(TrialParams(model="raw"), x, None) is x  # no groups, no manifold: the embedding itself


def test_n2d_clusters_the_umap_of_the_embedding() -> None:
    x, labels = make_blobs(300, n_features=10, centers=4, cluster_std=2.0, random_state=3)
    x = x.astype(np.float32)
    data = FeatureSet([f"t{i}" for i in range(300)], x, [f"f{i}" for i in range(10)], labels, list("abcd"), pd.DataFrame())
    params = TrialParams(model="raw", manifold="umap", manifold_dim=4, manifold_neighbors=20)
    result = evaluate(params, data, Embedded(x, {"fit_seconds": 0.0}))
    assert result.embedding.shape == (300, 4) and result.metrics["embedding_dim"] == 4
    assert result.metrics["ari"] > 0.9 and result.metrics["space_seconds"] > 0
