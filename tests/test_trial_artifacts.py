"""What a trial leaves behind for MLflow: embedding, latent analysis, the model, figures; projections computed once."""

from __future__ import annotations

import json

import mlflow.pytorch
import numpy as np
import pandas as pd
import pytest
import torch
from test_models import blobs, feature_set

from musicvae import projection
from musicvae.params import TrialParams
from musicvae.training import encode
from musicvae.trial import cached_projection, run_trial, write_artifacts


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
    # The model in MLflow's format: it loads back and encodes the data to the same means.
    model = mlflow.pytorch.load_model(str(tmp_path / "model"))
    assert "musicvae==" in (tmp_path / "model" / "requirements.txt").read_text()
    reloaded, _ = encode(model, {"features": data.features}, torch.device("cpu"))
    np.testing.assert_allclose(reloaded, result.embedding, rtol=1e-5, atol=1e-6)
    for name in ("projection.png", "latents.png"):
        assert (tmp_path / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_baseline_without_figures_writes_no_weights_and_no_pictures(tmp_path) -> None:
    x, labels = blobs()
    data = feature_set(x, labels)
    write_artifacts(run_trial(TrialParams(model="pca", latent_dim=4), data), data, tmp_path, figures=[])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedding.parquet", "figures", "latents.json"]
    assert not any((tmp_path / "figures").iterdir())


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
