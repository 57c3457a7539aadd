"""VaDE: a VAE with a Gaussian-mixture prior recovers a known mixture; a collapse is a reported failure."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from musicvae.config.params import TrialParams
from musicvae.config.sweep_file import SweepFileError, parse_sweep
from musicvae.data.dataset import FeatureSet
from musicvae.models import build_model
from musicvae.models.vade import VaDE
from musicvae.models.vae import MLPVAE, Output, kl_divergence
from musicvae.trial import VaDECollapse, run_trial


@pytest.mark.parametrize("clusterer", ["vade", "kmeans"])
def test_vade_recovers_a_known_mixture(clusterer: str, known_mixture) -> None:
    params = TrialParams(model="vade", latent_dim=4, hidden_dim=32, epochs=60, vade_pretrain_epochs=20, clusterer=clusterer, seed=1)
    result = run_trial(params, known_mixture)
    assert result.metrics["ari"] >= 0.9 and len(np.unique(result.clusters)) == 4


def test_a_collapsed_mixture_is_the_trials_failure_with_its_size(known_mixture) -> None:
    data = known_mixture
    flat = FeatureSet(data.track_ids, np.zeros_like(data.features), data.feature_names, data.labels, data.label_names, pd.DataFrame())
    params = TrialParams(model="vade", latent_dim=4, hidden_dim=32, epochs=25, vade_pretrain_epochs=20, clusterer="vade")
    with pytest.raises(VaDECollapse, match=r"VaDE collapsed: q\(c\|x\) puts 100% of the tracks in one of 4 components"):
        run_trial(params, flat)


def test_the_mixture_kl_is_the_standard_kl_for_one_standard_normal_component() -> None:
    """With one component N(0, I) (π = 1, so q(c|x) = 1) the mixture KL reduces to KL(q(z|x) || N(0, I))."""
    model = VaDE(MLPVAE(6, 3), latent_dim=3, n_components=1)
    with torch.no_grad():
        model.prior_mu.zero_(), model.prior_logvar.zero_()
    mu, logvar = torch.randn(8, 3), torch.randn(8, 3) * 0.3
    out = Output({}, mu, logvar)
    torch.testing.assert_close(model.kl(out), kl_divergence(mu, logvar).sum(dim=1))
    assert math.isclose(model.responsibilities(mu).sum().item(), 8.0, rel_tol=1e-6)


def test_vade_takes_the_mlp_or_the_conv_encoder_and_needs_its_model() -> None:
    mlp = build_model(TrialParams(model="vade", latent_dim=4), {"features": np.zeros((5, 10), np.float32)}, n_components=3)
    conv = build_model(TrialParams(model="vade", latent_dim=4, audio_encoder="cnn"), {"spectrogram": np.zeros((5, 8, 16), np.float32)}, n_components=3)
    assert type(mlp.base).__name__ == "MLPVAE" and type(conv.base).__name__ == "ConvVAE" and mlp.prior_mu.shape == (3, 4)
    with pytest.raises(SweepFileError, match="space.clusterer: vade reads VaDE's own cluster posterior"):
        parse_sweep({"name": "x", "space": {"model": "vae", "clusterer": "vade"}})
    with pytest.raises(ValueError, match=r"vade_pretrain_epochs \(20\) must be below epochs \(10\)"):
        TrialParams(model="vade", epochs=10)
