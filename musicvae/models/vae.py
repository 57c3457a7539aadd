"""The MLP variational autoencoder of the study, with a β on the KL term (β-VAE)."""

from __future__ import annotations

import torch
from torch import nn


class MLPVAE(nn.Module):
    """Encoder n -> h -> h/2 -> (mu, logvar) in R^latent; the decoder mirrors it."""

    def __init__(self, n_features: int, latent_dim: int = 32, hidden_dim: int = 128):
        super().__init__()
        half = max(hidden_dim // 2, latent_dim)
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, half), nn.ReLU())
        self.to_mu = nn.Linear(half, latent_dim)
        self.to_logvar = nn.Linear(half, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, half), nn.ReLU(), nn.Linear(half, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, n_features)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        return self.to_mu(hidden), self.to_logvar(hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterisation trick
        return self.decoder(z), mu, logvar


def vae_loss(
    x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Negative ELBO with a weighted KL: reconstruction + β·KL, both summed per track, averaged over the batch.

    Summing over features (not averaging) keeps the balance between the two
    terms independent of the number of features, so β means the same thing
    on 40 MFCCs as on 518 FMA features.
    """
    reconstruction = ((recon - x) ** 2).sum(dim=1).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(dim=1).mean()
    return reconstruction + beta * kl, reconstruction, kl
