"""Training any model of the VAE family: seeded, on CPU or CUDA, resumable.

The feature tables of this field are small (thousands of tracks; a 3000 x
20 x 128 spectrogram set is 30 MB), so the whole set lives on the device as
tensors and batches are index slices: no DataLoader, no per-batch copies.
Sets too large for that stay in host memory and each batch is copied.

A :class:`TrainingState` is everything needed to continue exactly where
training stopped (weights, optimiser, epoch, history, random generators):
Tune checkpoints it, and a restarted trial picks up from it.
"""

from __future__ import annotations

import copy
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from musicvae.models.vae import elbo

DEVICE_RESIDENT_BYTES = 2 * 1024**3  # above this, inputs stay in host memory and batches are copied


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf: the trial has failed, with this as its reason."""


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float  # the negative ELBO at the target β (the same objective at every epoch, warm-up or not)
    reconstruction: float
    kl: float
    beta: float  # the β used for this epoch's updates (below target during KL warm-up)


@dataclass
class TrainingState:
    """A resumable snapshot; ``save``/``load`` use one file so a checkpoint is one atomic unit."""

    epoch: int
    model: dict
    optimizer: dict
    history: list[EpochStats] = field(default_factory=list)
    rng: dict = field(default_factory=dict)

    FILE = "training_state.pt"

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / self.FILE
        torch.save({"epoch": self.epoch, "model": self.model, "optimizer": self.optimizer, "history": [vars(h) for h in self.history], "rng": self.rng}, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> TrainingState | None:
        path = Path(directory) / cls.FILE
        if not path.exists():
            return None
        raw = torch.load(path, map_location="cpu", weights_only=False)
        return cls(raw["epoch"], raw["model"], raw["optimizer"], [EpochStats(**h) for h in raw["history"]], raw["rng"])


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (CPU and CUDA); cuDNN made deterministic, so a seed gives one result."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def pick_device(preference: str = "auto") -> torch.device:
    """CUDA when this process can see a GPU (Ray shows a trial only the GPUs it asked for), else CPU."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but this trial sees no GPU")
    return torch.device(preference)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return order[n_val:], order[:n_val]


def beta_at(epoch: int, beta: float, warmup_epochs: int) -> float:
    """Linear KL warm-up (Bowman et al., 2016): β/warmup at epoch 1, the full β from epoch ``warmup_epochs``."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epoch / warmup_epochs)


class _Tensors:
    """The inputs as tensors, on the device when they fit; ``batch(idx)`` gives one batch on the device."""

    def __init__(self, inputs: dict[str, np.ndarray], device: torch.device):
        resident = device.type == "cpu" or sum(a.nbytes for a in inputs.values()) <= DEVICE_RESIDENT_BYTES
        home = device if resident else torch.device("cpu")
        self.device, self.home = device, home
        with warnings.catch_warnings():
            # A trial's arrays are read-only views of Ray's object store, shared by every trial on the
            # node; the tensors are only ever read, so torch's "non-writable array" warning does not apply.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
            self.data = {key: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=home) for key, a in inputs.items()}
        if not resident and torch.cuda.is_available():
            self.data = {key: t.pin_memory() for key, t in self.data.items()}

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        index = index.to(self.home)  # a no-op for an index already there (the training loop's)
        return {key: t[index].to(self.device, non_blocking=True) for key, t in self.data.items()}


def _rng_state(generator: torch.Generator) -> dict:
    state = {"shuffle": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(generator: torch.Generator, state: dict) -> None:
    generator.set_state(state["shuffle"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _snapshot(epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer, history: list[EpochStats], generator: torch.Generator) -> TrainingState:
    """A copy, not references: state_dict() tensors are the live weights, which the next step changes in place."""
    return TrainingState(epoch, copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), list(history), _rng_state(generator))


def _evaluate(model: nn.Module, data: _Tensors, index: torch.Tensor, beta: float, batch_size: int = 4096) -> tuple[float, float, float]:
    """Mean negative ELBO, reconstruction and KL over ``index``, in batches (bounded memory on big sets)."""
    model.eval()
    totals = np.zeros(3)
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            part = index[start : start + batch_size]
            terms = elbo(model, data.batch(part), beta)
            totals += np.array([terms.loss.item(), terms.reconstruction.item(), terms.kl.item()]) * len(part)
    loss, reconstruction, kl = (float(v) for v in totals / max(len(index), 1))
    return loss, reconstruction, kl


def train_model(
    model: nn.Module,
    inputs: dict[str, np.ndarray],
    *,
    beta: float,
    epochs: int,
    lr: float,
    batch_size: int,
    val_fraction: float,
    seed: int,
    device: torch.device,
    kl_warmup_epochs: int = 0,
    free_bits: float = 0.0,
    resume: TrainingState | None = None,
    checkpoint_every: int = 0,
    on_epoch: Callable[[EpochStats, TrainingState | None], None] | None = None,
) -> list[EpochStats]:
    """Adam on reconstruction + β·KL, with a held-out split for the ELBO.

    A model with ``pretrain_epochs`` (VaDE) trains on the reconstruction alone
    for those epochs, then gets ``initialise_prior(posterior means of the
    training split)`` before the KL term (and its warm-up) begins.

    ``on_epoch`` sees every epoch (Tune reports there) and, every
    ``checkpoint_every`` epochs and at the last one, a :class:`TrainingState`
    to checkpoint. ``resume`` continues from such a state: the result is the
    one an uninterrupted run would have given.
    """
    n = len(next(iter(inputs.values())))
    train_idx, val_idx = split_indices(n, val_fraction, seed)
    if len(val_idx) == 0:
        val_idx = train_idx  # no split asked for: report the training ELBO
    data = _Tensors(inputs, device)
    model.to(device)
    # torch's default Adam, not fused=True: fused halves the optimiser's share of an MLP VAE step on CPU
    # (bench/throughput.py), but it rounds differently in the last bit, and K-Means on the latent is that
    # sensitive: on sweeps/easy.yaml it moved the VAE's per-seed ARI by up to 0.028 (mean +0.008, over its
    # three-seed spread of 0.005). Kept bit-identical to the results already recorded.
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    history: list[EpochStats] = []
    first = 1
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        _restore_rng(generator, resume.rng)
        history, first = list(resume.history), resume.epoch + 1

    train_index, val_index = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    pretrain = getattr(model, "pretrain_epochs", 0)  # VaDE: reconstruction alone first, then its prior from the latents
    for epoch in range(first, epochs + 1):
        if pretrain and epoch == pretrain + 1:
            model.initialise_prior(encode(model, {k: v[train_idx] for k, v in inputs.items()}, device)[0], seed=seed)
        model.train()
        epoch_beta = 0.0 if epoch <= pretrain else beta_at(epoch - pretrain, beta, kl_warmup_epochs)
        order = train_index[torch.randperm(len(train_index), generator=generator)].to(data.home)
        # The epoch's loss is summed on the device and read once, at the end: reading or testing every
        # batch's loss would make the host wait for the device at each step. In float64, so train_loss is
        # what a sum of Python floats gave. A NaN or inf in any batch leaves the sum non-finite: the check
        # below still fails the epoch it happened in (its remaining steps are wasted, on garbage weights).
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            terms = elbo(model, data.batch(part), epoch_beta, free_bits)
            optimizer.zero_grad()
            terms.loss.backward()
            optimizer.step()
            total.add_(terms.loss.detach(), alpha=len(part))
        train_loss = total.item() / len(order)
        if not np.isfinite(train_loss):
            raise NonFiniteLossError(f"loss became {train_loss} at epoch {epoch} (lr={lr}, beta={beta})")
        val_loss, reconstruction, kl = _evaluate(model, data, val_index, beta)
        if not np.isfinite(val_loss):
            raise NonFiniteLossError(f"validation loss became {val_loss} at epoch {epoch}")
        stats = EpochStats(epoch, train_loss, val_loss, reconstruction, kl, epoch_beta)
        history.append(stats)
        if on_epoch is not None:
            due = checkpoint_every > 0 and (epoch % checkpoint_every == 0 or epoch == epochs)
            state = _snapshot(epoch, model, optimizer, history, generator) if due else None
            on_epoch(stats, state)
    return history


def encode(model: nn.Module, inputs: dict[str, np.ndarray], device: torch.device, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior means (the embedding: no sampling noise) and log-variances (None for an autoencoder) of every track."""
    model.to(device).eval()
    data = _Tensors(inputs, device)
    n = len(next(iter(inputs.values())))
    mus, logvars = [], []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            mu, logvar = model.encode(data.batch(torch.arange(start, min(start + batch_size, n))))
            mus.append(mu.cpu().numpy())
            if logvar is not None:
                logvars.append(logvar.cpu().numpy())
    return np.concatenate(mus), (np.concatenate(logvars) if logvars else None)
