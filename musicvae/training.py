"""Training a VAE: seeded, on CPU or CUDA, with the data held on the device.

The MFCC tables of this field are small (thousands of rows, tens of columns),
so the whole set lives on the device as one tensor and batches are index
slices: no DataLoader, no per-batch host-to-device copies.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from musicvae.models.vae import MLPVAE, vae_loss


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf: the trial has failed, with this as its reason."""


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    reconstruction: float
    kl: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return order[n_val:], order[:n_val]


def _evaluate(model: MLPVAE, x: torch.Tensor, beta: float) -> tuple[float, float, float]:
    model.eval()
    with torch.no_grad():
        recon, mu, logvar = model(x)
        loss, reconstruction, kl = vae_loss(x, recon, mu, logvar, beta)
    return loss.item(), reconstruction.item(), kl.item()


def train_vae(
    model: MLPVAE,
    features: np.ndarray,
    *,
    beta: float,
    epochs: int,
    lr: float,
    batch_size: int,
    val_fraction: float,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> list[EpochStats]:
    """Adam on reconstruction + β·KL; ``on_epoch`` sees every epoch (Tune reports there)."""
    seed_everything(seed)
    train_idx, val_idx = split_indices(len(features), val_fraction, seed)
    data = torch.as_tensor(features, dtype=torch.float32, device=device)
    x_train = data[torch.as_tensor(train_idx, device=device)]
    x_val = data[torch.as_tensor(val_idx, device=device)] if len(val_idx) else x_train
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)

    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(device)
        total, seen = 0.0, 0
        for start in range(0, len(order), batch_size):
            batch = x_train[order[start : start + batch_size]]
            recon, mu, logvar = model(batch)
            loss, _, _ = vae_loss(batch, recon, mu, logvar, beta)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"loss became {loss.item()} at epoch {epoch} (lr={lr}, beta={beta})")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            seen += len(batch)
        val_loss, reconstruction, kl = _evaluate(model, x_val, beta)
        if not np.isfinite(val_loss):
            raise NonFiniteLossError(f"validation loss became {val_loss} at epoch {epoch}")
        stats = EpochStats(epoch, total / seen, val_loss, reconstruction, kl)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return history


def posterior_mean(model: MLPVAE, features: np.ndarray, device: torch.device) -> np.ndarray:
    """The embedding used for clustering: the encoder's mean, no sampling noise."""
    model.eval()
    with torch.no_grad():
        mu, _ = model.encode(torch.as_tensor(features, dtype=torch.float32, device=device))
    return mu.cpu().numpy()
