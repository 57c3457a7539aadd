"""IDEC (Guo et al., IJCAI 2017): refine a trained encoder for clustering, keeping its reconstruction.

DEC's recipe on any model of the VAE family: K-Means on the posterior means
gives k centres; each track's soft assignment is a Student-t kernel around
them, q_ij ∝ (1 + |z_i - μ_j|²)⁻¹; the target p_ij ∝ q_ij² / Σ_i q_ij
sharpens it (confident tracks pull harder, large clusters are damped). The
encoder and the centres follow the model's own ELBO (:func:`~musicvae.models.vae.elbo`,
the reconstruction IDEC adds to DEC so the latent keeps its local structure)
plus ``gamma`` · KL(P ‖ Q) per track. The target is recomputed once per
epoch; refinement stops when fewer than ``tol`` of the tracks change
cluster between two targets, or after ``epochs``. The cluster of a track is
argmax_j q_ij.

Our ELBO sums the reconstruction over a track's values (see
:func:`~musicvae.models.vae.squared_error`), so ``gamma`` is relative to
that sum: the paper's 0.1 was for a per-value mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

from musicvae.models.vae import elbo
from musicvae.training.loop import encode, seed_everything
from musicvae.training.tensors import Tensors


@dataclass(frozen=True)
class IDECResult:
    labels: np.ndarray
    embedding: np.ndarray  # the refined posterior means
    epochs: int  # refinement epochs run
    changed: float  # share of tracks whose cluster changed at the last target update
    centres: np.ndarray  # the refined cluster centres, which assign a new track (argmax of its soft assignment)


def soft_assignment(z: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Student-t (one degree of freedom) similarity of each track to each centre, normalised per track."""
    q = 1.0 / (1.0 + torch.cdist(z, centres).pow(2))
    return q / q.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC's auxiliary target: q² over each cluster's soft frequency, normalised per track."""
    weight = q.pow(2) / q.sum(dim=0)
    return weight / weight.sum(dim=1, keepdim=True)


def refine(
    model: nn.Module,
    inputs: dict[str, np.ndarray],
    n_clusters: int,
    *,
    beta: float,
    seed: int,
    device: torch.device,
    gamma: float = 1.0,
    epochs: int = 50,
    lr: float = 1e-4,
    batch_size: int = 256,
    tol: float = 0.001,
) -> IDECResult:
    """Refine ``model`` (in place) and return its clusters; see the module docstring."""
    seed_everything(seed)
    z, _ = encode(model, inputs, device)
    kmeans = KMeans(n_clusters=n_clusters, n_init=20, random_state=seed).fit(z)
    centres = nn.Parameter(torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32, device=device))
    optimizer = torch.optim.Adam([*model.parameters(), centres], lr=lr)
    data = Tensors(inputs, device)
    n = len(z)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    labels, changed, epoch = kmeans.labels_, 1.0, 0
    for epoch in range(1, epochs + 1):
        mu = torch.as_tensor(encode(model, inputs, device)[0], device=device)
        with torch.no_grad():
            q = soft_assignment(mu, centres)
            target = target_distribution(q)
        new = q.argmax(dim=1).cpu().numpy()
        changed, labels = float(np.mean(new != labels)), new
        if epoch > 1 and changed < tol:
            break
        model.train()
        for part in torch.randperm(n, generator=generator).split(batch_size):
            batch = data.batch(part)
            mu_batch, _ = model.encode(batch)
            q_batch = soft_assignment(mu_batch, centres)
            p_batch = target[part.to(device)]
            clustering = (p_batch * (p_batch.clamp_min(1e-12).log() - q_batch.clamp_min(1e-12).log())).sum(dim=1).mean()
            loss = elbo(model, batch, beta).loss + gamma * clustering
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    embedding, _ = encode(model, inputs, device)
    with torch.no_grad():
        labels = soft_assignment(torch.as_tensor(embedding, device=device), centres).argmax(dim=1).cpu().numpy()
    return IDECResult(labels, embedding, epoch, changed, centres.detach().cpu().numpy())
