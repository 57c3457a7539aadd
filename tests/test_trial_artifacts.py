"""What a trial leaves behind for MLflow: embedding, latent analysis, figures; projections computed once (its pipeline: test_pipeline.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import blobs, feature_set

from musicvae.config.params import TrialParams
from musicvae.config.sections import TrialsConfig
from musicvae.reporting import projection
from musicvae.reporting.trial_projection import cached_projection, save_projection
from musicvae.trial import run_and_save, run_trial, write_artifacts


def test_artifacts_of_a_vae_trial(tmp_path) -> None:
    x, labels = blobs()
    data = feature_set(x, labels)
    result = run_trial(TrialParams(model="vae", latent_dim=4, epochs=5), data)
    timing = write_artifacts(result, data, tmp_path, figures=["umap", "tsne", "disentanglement"], figure_points=100, title="vae")
    assert timing["artifact_seconds"] > 0
    embedding = pd.read_parquet(tmp_path / "embedding.parquet")
    assert list(embedding.columns[:3]) == ["track_id", "cluster", "genre"] and embedding.shape == (120, 3 + 4)
    assert (embedding["cluster"].to_numpy() == result.clusters).all()
    projection = pd.read_parquet(tmp_path / "projection.parquet")
    assert len(projection) == 100 and {"umap_x", "umap_y", "tsne_x", "tsne_y"} <= set(projection.columns)  # a seeded sample
    latents = json.loads((tmp_path / "latents.json").read_text())
    assert len(latents["kl_per_dim"]) == 4 and latents["latent_active_units"] == result.metrics["latent_active_units"]
    assert not (tmp_path / "model").exists()  # the network is in the trial's pipeline (tests/test_pipeline.py), never a pickle
    for name in ("projection.png", "latents.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_baseline_without_figures_writes_no_weights_and_no_pictures(tmp_path) -> None:
    x, labels = blobs()
    data = feature_set(x, labels)
    write_artifacts(run_trial(TrialParams(model="pca", latent_dim=4), data), data, tmp_path, figures=[])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedding.parquet", "figures", "latents.json"]
    assert not any((tmp_path / "figures").iterdir())


def test_a_trial_draws_no_projection_by_default(tmp_path) -> None:
    """UMAP and t-SNE cost seconds a trial: by default only the sweep's selected and oracle trials get them, afterwards."""
    x, labels = blobs()
    data = feature_set(x, labels)
    run_and_save(TrialParams(model="pca", latent_dim=4), data, tmp_path, TrialsConfig(), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "projection.parquet").exists() and not list((tmp_path / "cache" / "projections").rglob("*.npy"))
    assert [p.name for p in (tmp_path / "figures").iterdir()] == ["latents.png"]


def test_the_latent_analysis_is_drawn_once_per_model_and_seed(tmp_path, monkeypatch) -> None:
    """It is the model's, the same for every clusterer: drawn once, titled without the clusterer, copied for the others."""
    from musicvae.reporting import figures

    titles = []
    draw = figures.disentanglement_figure
    monkeypatch.setattr(figures, "disentanglement_figure", lambda latents, title="": titles.append(title) or draw(latents, title=title))
    x, labels = blobs()
    data = feature_set(x, labels)
    for clusterer in ("kmeans", "agglomerative", "dbscan"):
        run_and_save(TrialParams(model="pca", latent_dim=4, clusterer=clusterer), data, tmp_path / clusterer, TrialsConfig(), cache_dir=tmp_path / "cache")
    assert titles == ["pca latent 4, seed 0"]
    pictures = {(tmp_path / c / "figures" / "latents.png").read_bytes() for c in ("kmeans", "agglomerative", "dbscan")}
    assert len(pictures) == 1
    run_and_save(TrialParams(model="pca", latent_dim=4, seed=1), data, tmp_path / "seed1", TrialsConfig(), cache_dir=tmp_path / "cache")
    assert titles == ["pca latent 4, seed 0", "pca latent 4, seed 1"]  # another seed, another model


def test_the_projection_drawn_later_from_the_embedding_is_the_one_the_trial_would_draw(tmp_path) -> None:
    """After the sweep (or on demand) the projection comes from embedding.parquet: the same sample, seed and cache entry."""
    x, labels = blobs(n_per=50)
    data = feature_set(x, labels)
    result = run_trial(TrialParams(model="pca", latent_dim=4, seed=3), data)
    cache = tmp_path / "cache"
    write_artifacts(result, data, tmp_path / "trial", figures=["umap"], figure_points=100, seed=3, cache_dir=cache)
    later = tmp_path / "later"
    save_projection(pd.read_parquet(tmp_path / "trial" / "embedding.parquet"), later, figure_points=100, seed=3, methods=("umap",), cache_dir=cache)
    pd.testing.assert_frame_equal(pd.read_parquet(later / "projection.parquet"), pd.read_parquet(tmp_path / "trial" / "projection.parquet"))
    assert len(list(cache.glob("*.npy"))) == 1  # one UMAP run for both
    assert (later / "figures" / "projection.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_projection_is_computed_once_per_distinct_embedding(tmp_path, monkeypatch) -> None:
    z = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    first = cached_projection(z, "tsne", 0, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the cached projection should have been used")

    monkeypatch.setattr(projection, "project", refuse)
    assert np.array_equal(cached_projection(z, "tsne", 0, tmp_path), first)
    with pytest.raises(AssertionError, match="cached"):  # another embedding, method or seed is another key
        cached_projection(z + 1e-3, "tsne", 0, tmp_path)
    with pytest.raises(AssertionError, match="cached"):
        cached_projection(z, "tsne", 1, tmp_path)
