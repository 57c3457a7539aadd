"""VaDE (Jiang et al., IJCAI 2017): a VAE whose prior is a learnable Gaussian mixture, one component per cluster.

The generative story is c ~ Cat(π), z ~ N(μ_c, diag σ²_c), x ~ p(x|z). Any
encoder/decoder of the family serves (the MLP VAE on the MFCC vector, the
Conv VAE on a spectrogram): :class:`VaDE` wraps it and adds the prior, so
the one training loop and ELBO of :mod:`musicvae.models.vae` still apply;
only the KL term is the model's own (:meth:`VaDE.kl`):

    KL(q(z, c | x) || p(z, c)) = -H[q(z|x)] + Σ_c γ_c (log γ_c - log π_c - E_q(z|x)[log p(z|c)]),

with γ_c = q(c|x) = p(c | z = μ(x)), the responsibilities at the posterior
mean (the paper draws z; the mean makes the assignment deterministic and is
what the clusterer reports).

Training follows the paper: the first ``pretrain_epochs`` are the
reconstruction alone (the autoencoder pretraining), then the mixture prior is
initialised by a Gaussian mixture fitted to the posterior means
(:meth:`VaDE.initialise_prior`, called by :func:`~musicvae.training.loop.train_model`),
then the full ELBO. Without that initialisation public reproductions
collapse to one component; a collapse that still happens is reported by the
``vade`` clusterer as the trial's failure, with the share of tracks in the
largest component.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import nn

from musicvae.models.vae import Batch, Output

LOG_2PI = math.log(2 * math.pi)


class VaDE(nn.Module):
    def __init__(self, base: nn.Module, latent_dim: int, n_components: int, pretrain_epochs: int = 20):
        super().__init__()
        self.base = base
        self.inputs = base.inputs
        self.pretrain_epochs = pretrain_epochs
        self.logits = nn.Parameter(torch.zeros(n_components))  # π = softmax(logits)
        self.prior_mu = nn.Parameter(torch.randn(n_components, latent_dim))
        self.prior_logvar = nn.Parameter(torch.zeros(n_components, latent_dim))

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.base.encode(batch)

    def forward(self, batch: Batch) -> Output:
        return self.base(batch)

    def reconstruction(self, batch: Batch, out: Output) -> torch.Tensor:
        return self.base.reconstruction(batch, out)

    def _log_joint(self, mu: torch.Tensor) -> torch.Tensor:
        """log π_c + log N(μ(x); μ_c, σ²_c) per track and component, (batch, K)."""
        diff = mu.unsqueeze(1) - self.prior_mu
        log_density = -0.5 * (LOG_2PI + self.prior_logvar + diff.pow(2) / self.prior_logvar.exp()).sum(dim=2)
        return torch.log_softmax(self.logits, dim=0) + log_density

    def responsibilities(self, mu: torch.Tensor) -> torch.Tensor:
        """q(c|x): the posterior over components at the posterior mean."""
        return torch.softmax(self._log_joint(mu), dim=1)

    def kl(self, out: Output) -> torch.Tensor:
        """KL(q(z, c | x) || p(z, c)) per track (see the module docstring)."""
        mu, logvar = out.mu, out.logvar
        gamma = self.responsibilities(mu)
        diff = mu.unsqueeze(1) - self.prior_mu
        expected = -0.5 * (LOG_2PI + self.prior_logvar + (logvar.exp().unsqueeze(1) + diff.pow(2)) / self.prior_logvar.exp()).sum(dim=2)
        entropy = 0.5 * (1.0 + LOG_2PI + logvar).sum(dim=1)
        log_pi = torch.log_softmax(self.logits, dim=0)
        return (gamma * (gamma.clamp_min(1e-10).log() - log_pi - expected)).sum(dim=1) - entropy

    @torch.no_grad()
    def initialise_prior(self, mu: np.ndarray, seed: int = 0) -> None:
        """The mixture prior from a diagonal Gaussian mixture fitted to the pretrained posterior means."""
        gmm = GaussianMixture(len(self.logits), covariance_type="diag", n_init=3, random_state=seed, reg_covar=1e-4).fit(mu)
        device = self.logits.device
        self.logits.copy_(torch.as_tensor(np.log(gmm.weights_), dtype=torch.float32, device=device))
        self.prior_mu.copy_(torch.as_tensor(gmm.means_, dtype=torch.float32, device=device))
        self.prior_logvar.copy_(torch.as_tensor(np.log(gmm.covariances_), dtype=torch.float32, device=device))
