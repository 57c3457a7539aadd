"""The VAE family's shared parts, and the MLP VAE of the study (β-VAE, or a plain autoencoder).

Every model here maps a *batch* (a dict of tensors: ``features`` for the
MFCC vector, ``spectrogram``, ``text``, ``text_mask``) to an :class:`Output`
and knows its own reconstruction error. The loss is the same for all of
them (:func:`elbo`): reconstruction + β·KL, so one training loop serves
every model and β means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn

Batch = dict[str, torch.Tensor]
_noise: ContextVar[Callable[[torch.Tensor], torch.Tensor] | None] = ContextVar("musicvae_noise", default=None)


@dataclass
class Output:
    recon: dict[str, torch.Tensor]  # per input key
    mu: torch.Tensor
    logvar: torch.Tensor | None  # None: a deterministic autoencoder (no posterior variance, no KL)


@dataclass
class LossTerms:
    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def squared_error(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Per-track squared error summed over every value (a unit-variance Gaussian likelihood, up to constants).

    Summing (not averaging) over values keeps the balance between the
    reconstruction and the KL term independent of how many values a track
    has, so β means the same on 40 MFCCs as on 518 FMA features.
    """
    return ((recon - x) ** 2).flatten(1).sum(dim=1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, σ²) || N(0, I)) per track and dimension, shape (batch, latent)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def elbo(model: nn.Module, batch: Batch, beta: float, free_bits: float = 0.0) -> LossTerms:
    """Negative ELBO with a weighted KL (β-VAE): reconstruction + β·KL, each a mean over the batch.

    ``free_bits`` λ (Kingma et al. 2016): each latent dimension's batch-mean KL
    counts as at least λ nats in the loss, so a dimension is never pushed
    below λ and the posterior cannot collapse onto the prior entirely; the KL
    reported stays the true one.

    A model with its own prior defines ``kl(out)`` (VaDE). A model with
    ``subsets(batch)`` (the multimodal VAE) trains on the sum of
    the ELBOs of the batch and of each subset (MVAE's sub-sampled ELBO); the
    reconstruction and KL reported are the joint ones.
    """
    out = model(batch)
    reconstruction = model.reconstruction(batch, out).mean()
    kl = _kl(model, out)
    loss = reconstruction + beta * (_kl(model, out, free_bits) if free_bits > 0 else kl)
    for subset in model.subsets(batch) if hasattr(model, "subsets") else []:
        part = model(subset)
        loss = loss + model.reconstruction(subset, part).mean() + beta * _kl(model, part, free_bits)
    return LossTerms(loss, reconstruction, kl)


def _kl(model: nn.Module, out: Output, free_bits: float = 0.0) -> torch.Tensor:
    """The batch's mean KL to the prior: N(0, I), or the model's own (``model.kl``: VaDE's mixture); 0 for an autoencoder.

    With ``free_bits`` each dimension's batch mean counts as at least that much (N(0, I) prior only).
    """
    if out.logvar is None:
        return torch.zeros((), device=out.mu.device)
    if hasattr(model, "kl"):
        return model.kl(out).mean()
    per_dimension = kl_divergence(out.mu, out.logvar).mean(dim=0)
    return per_dimension.clamp_min(free_bits).sum() if free_bits > 0 else per_dimension.sum()


def sample(mu: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
    """The reparameterisation trick; the mean itself for a deterministic encoder.

    The noise comes from torch's global generator, or from the :func:`noise_from` block this runs in.
    """
    if logvar is None:
        return mu
    draw = _noise.get()
    return mu + (torch.randn_like(mu) if draw is None else draw(mu)) * torch.exp(0.5 * logvar)


@contextmanager
def noise_from(draw: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within this block :func:`sample` takes its noise from ``draw(mu)``, not from torch's global generator.

    Seeds trained together (:mod:`musicvae.training.replicas`) need it: under ``vmap`` one global draw would be
    one batched draw, not the numbers each seed's own run takes from its own generator.
    """
    token = _noise.set(draw)
    try:
        yield
    finally:
        _noise.reset(token)


class GaussianHead(nn.Module):
    """Hidden features -> (mu, logvar), or (mu, None) for a deterministic encoder."""

    def __init__(self, n_in: int, latent_dim: int, deterministic: bool = False):
        super().__init__()
        self.to_mu = nn.Linear(n_in, latent_dim)
        self.to_logvar = None if deterministic else nn.Linear(n_in, latent_dim)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.to_mu(hidden), None if self.to_logvar is None else self.to_logvar(hidden)


def mlp_encoder(n_in: int, hidden_dim: int, latent_dim: int) -> tuple[nn.Sequential, int]:
    """n -> h -> h/2 with ReLU, as in the study (h/2 no narrower than the latent); returns the network and its output width."""
    half = max(hidden_dim // 2, latent_dim)
    return nn.Sequential(nn.Linear(n_in, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, half), nn.ReLU()), half


def mlp_decoder(latent_dim: int, hidden_dim: int, n_out: int) -> nn.Sequential:
    half = max(hidden_dim // 2, latent_dim)
    return nn.Sequential(nn.Linear(latent_dim, half), nn.ReLU(), nn.Linear(half, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, n_out))


class MLPVAE(nn.Module):
    """The study's VAE on the MFCC summary vector; ``deterministic=True`` gives the plain autoencoder baseline."""

    inputs = ("features",)

    def __init__(self, n_features: int, latent_dim: int = 32, hidden_dim: int = 128, deterministic: bool = False):
        super().__init__()
        self.encoder, width = mlp_encoder(n_features, hidden_dim, latent_dim)
        self.head = GaussianHead(width, latent_dim, deterministic)
        self.decoder = mlp_decoder(latent_dim, hidden_dim, n_features)

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.head(self.encoder(batch["features"]))

    def forward(self, batch: Batch) -> Output:
        mu, logvar = self.encode(batch)
        return Output({"features": self.decoder(sample(mu, logvar))}, mu, logvar)

    def reconstruction(self, batch: Batch, out: Output) -> torch.Tensor:
        return squared_error(batch["features"], out.recon["features"])
