from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from musicvae.config import TrialParams
from musicvae.dataset import FeatureSet
from musicvae.models.pca import pca_embedding
from musicvae.models.vae import MLPVAE, vae_loss
from musicvae.training import NonFiniteLossError, pick_device, posterior_mean, seed_everything, train_vae
from musicvae.trial import run_trial


def blobs(n_per: int = 40, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (3, d))
    x = np.concatenate([c + rng.normal(0, 0.5, (n_per, d)) for c in centres]).astype(np.float32)
    return (x - x.mean(0)) / x.std(0), np.repeat(np.arange(3), n_per)


def feature_set(x: np.ndarray, labels: np.ndarray | None) -> FeatureSet:
    names = ["a", "b", "c"] if labels is not None else []
    ids = [str(i) for i in range(len(x))]
    return FeatureSet(ids, x, [f"f{i}" for i in range(x.shape[1])], labels, names, pd.DataFrame({"track_id": ids}))


TRAIN = dict(lr=1e-3, batch_size=32, val_fraction=0.1, device=torch.device("cpu"))


def test_vae_shapes() -> None:
    model = MLPVAE(40, latent_dim=32, hidden_dim=128)
    recon, mu, logvar = model(torch.zeros(5, 40))
    assert recon.shape == (5, 40) and mu.shape == logvar.shape == (5, 32)
    assert posterior_mean(model, np.zeros((7, 40), dtype=np.float32), torch.device("cpu")).shape == (7, 32)


def test_loss_decreases_on_a_tiny_problem() -> None:
    x, _ = blobs()
    seed_everything(0)
    history = train_vae(MLPVAE(12, 4, 32), x, beta=1.0, epochs=60, seed=0, **{**TRAIN, "lr": 5e-3})
    assert history[-1].train_loss < 0.5 * history[0].train_loss
    assert history[-1].val_loss < 0.5 * history[0].val_loss


def test_beta_scales_the_kl_term() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 10)
    recon, mu, logvar = torch.randn(16, 10), torch.randn(16, 4), torch.randn(16, 4)
    loss0, rec, kl = vae_loss(x, recon, mu, logvar, beta=0.0)
    loss4, _, _ = vae_loss(x, recon, mu, logvar, beta=4.0)
    assert kl > 0 and loss0 == pytest.approx(rec.item())
    assert (loss4 - loss0).item() == pytest.approx(4 * kl.item(), rel=1e-5)


def test_training_is_deterministic_for_a_seed() -> None:
    x, _ = blobs()

    def train(seed: int) -> float:
        seed_everything(seed)  # weights are initialised at construction
        return train_vae(MLPVAE(12, 4, 32), x, beta=1.0, epochs=3, seed=seed, **TRAIN)[-1].val_loss

    assert train(5) == train(5) != train(6)


def test_a_trial_is_deterministic_for_a_seed() -> None:
    x, labels = blobs()
    data = feature_set(x, labels)
    a, b, c = (run_trial(TrialParams(latent_dim=4, epochs=3, seed=s), data) for s in (1, 1, 2))
    assert a.metrics["val_loss"] == b.metrics["val_loss"] != c.metrics["val_loss"]
    assert (a.embedding == b.embedding).all() and (a.clusters == b.clusters).all()


def test_non_finite_loss_stops_training_with_a_reason() -> None:
    x, _ = blobs()
    x[3, 2] = np.nan
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        train_vae(MLPVAE(12, 4, 32), x, beta=1.0, epochs=2, seed=0, **TRAIN)


def test_pca_caps_components_at_the_feature_count() -> None:
    x, _ = blobs(d=6)
    embedding, explained = pca_embedding(x, 32)
    assert embedding.shape == (120, 6) and explained == pytest.approx(1.0)


def test_device_choice() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("model", ["pca", "vae"])
def test_run_trial_end_to_end(model: str) -> None:
    x, labels = blobs()
    epochs = []
    result = run_trial(TrialParams(model=model, latent_dim=4, epochs=30, batch_size=32), feature_set(x, labels), on_epoch=epochs.append)
    assert result.embedding.shape == (120, 4) and len(set(result.clusters)) == 3
    assert result.metrics["ari"] > 0.9 and result.metrics["n_clusters"] == 3
    assert len(epochs) == (30 if model == "vae" else 0)
    assert ("val_loss" in result.metrics) == (model == "vae")


def test_run_trial_without_labels_needs_n_clusters() -> None:
    x, _ = blobs()
    with pytest.raises(ValueError, match="n_clusters"):
        run_trial(TrialParams(model="pca"), feature_set(x, None))
    result = run_trial(TrialParams(model="pca", n_clusters=3), feature_set(x, None))
    assert "ari" not in result.metrics and result.metrics["silhouette"] > 0.5
