"""IDEC: refining a trained encoder for clustering recovers a known mixture; it needs a neural model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicvae.clustering.idec import soft_assignment, target_distribution
from musicvae.config.params import TrialParams
from musicvae.config.sweep_file import SweepFileError, parse_sweep
from musicvae.trial import run_trial


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_idec_recovers_a_known_mixture(model: str, known_mixture) -> None:
    params = TrialParams(model=model, latent_dim=4, hidden_dim=32, epochs=30, beta=0.5, clusterer="idec", idec_epochs=20, seed=1)
    result = run_trial(params, known_mixture)
    assert result.metrics["ari"] >= 0.9
    assert 1 <= result.metrics["idec_epochs_run"] <= 20 and 0 <= result.metrics["idec_changed"] <= 1
    assert result.embedding.shape == (400, 4) and len(np.unique(result.clusters)) == 4


def test_target_distribution_sharpens_the_soft_assignment() -> None:
    z = torch.tensor([[0.0, 0.0], [0.4, 0.0], [3.0, 3.0]])
    q = soft_assignment(z, torch.tensor([[0.0, 0.0], [3.0, 3.0]]))
    p = target_distribution(q)
    torch.testing.assert_close(q.sum(1), torch.ones(3))
    torch.testing.assert_close(p.sum(1), torch.ones(3))
    assert (p.max(dim=1).values > q.max(dim=1).values).all()  # more confident everywhere


def test_idec_without_a_trained_encoder_is_a_clear_error(known_mixture) -> None:
    with pytest.raises(ValueError, match="idec refines a trained encoder; model 'pca' has none"):
        run_trial(TrialParams(model="pca", latent_dim=3, clusterer="idec"), known_mixture)
    with pytest.raises(SweepFileError, match="space.clusterer: idec refines a trained encoder"):
        parse_sweep({"name": "x", "space": {"model": ["raw", "pca"], "clusterer": ["kmeans", "idec"]}})
