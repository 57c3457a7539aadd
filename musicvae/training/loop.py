"""Training any model of the VAE family: seeded, on CPU or CUDA, resumable; one seed, or several together.

The feature tables of this field are small (thousands of tracks; a 3000 x
20 x 128 spectrogram set is 30 MB), so the whole set lives on the device as
tensors and batches are index slices: no DataLoader, no per-batch copies.
Sets too large for that stay in host memory and each batch is copied.

:func:`train_replicas` is the one loop. It trains one model
(:func:`train_model`), or the same model under several seeds as *replicas*:
one vectorised model (``torch.func.stack_module_state`` + ``vmap``), each
replica with its own seed's initial weights, data split, batch order and
sampling noise, and its own failure. A small MLP's step is mostly the cost
of launching many small operations (dispatch on a CPU, kernel launches on a
GPU); its replicas' matrix products run as one batched product. On the CPU
each replica gets exactly the numbers its lone run gives, wherever a probe
step says so (``tests/test_replicas.py``): a replica *is* its seed's model,
bit for bit. Models with convolutions are not vectorised (:mod:`musicvae.training.replicas`).

A :class:`TrainingState` is everything needed to continue exactly where
training stopped (weights, optimiser, epoch, histories, random generators):
Tune checkpoints it, and a restarted trial picks up from it.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from musicvae.models.vae import elbo
from musicvae.training.replicas import Replicas, set_noise_state, vectorises
from musicvae.training.tensors import Tensors

VALIDATION_BATCH = 4096  # tracks per batch of the validation pass (bounded memory on big sets)


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
class Outcome:
    """One replica's training: its history, and the error that stopped it (its history ends at the epoch before)."""

    history: list[EpochStats]
    error: NonFiniteLossError | None = None


@dataclass
class TrainingState:
    """A resumable snapshot of every replica; ``save``/``load`` use one file so a checkpoint is one atomic unit.

    Per replica, in ``seeds`` order: its weights (``models``), history and
    random generators (``rng``); ``failed`` holds the error of each replica
    that stopped (by seed). ``optimizer`` is the one optimiser of the replicas
    still training.
    """

    epoch: int
    seeds: list[int]
    models: list[dict]
    optimizer: dict
    histories: list[list[EpochStats]] = field(default_factory=list)
    rng: list[dict] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    FILE = "training_state.pt"

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / self.FILE
        raw = {**vars(self), "histories": [[vars(h) for h in history] for history in self.histories]}
        torch.save(raw, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> TrainingState | None:
        path = Path(directory) / cls.FILE
        if not path.exists():
            return None
        raw = torch.load(path, map_location="cpu", weights_only=False)
        return cls(**{**raw, "histories": [[EpochStats(**h) for h in history] for history in raw["histories"]]})


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


def batch_sizes(n: int, val_fraction: float, batch_size: int) -> list[int]:
    """The sizes of the batches :func:`train_replicas` forms on ``n`` tracks, training and validation (for :func:`~musicvae.training.replicas.exact`)."""
    n_val = int(round(n * val_fraction))
    n_train, n_val = n - n_val, n_val or n
    sizes = {min(batch_size, n_train), n_train % batch_size, min(n_val, VALIDATION_BATCH), n_val % VALIDATION_BATCH}
    return sorted(size for size in sizes if size > 0)


def beta_at(epoch: int, beta: float, warmup_epochs: int) -> float:
    """Linear KL warm-up (Bowman et al., 2016): β/warmup at epoch 1, the full β from epoch ``warmup_epochs``."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epoch / warmup_epochs)


class _Alone:
    """One model trained as itself: its own parameters and optimiser, its noise from torch's global generator.

    The interface of :class:`~musicvae.training.replicas.Replicas`, for one replica: without vmap's cost per call
    (bench/throughput.py), and the very loop the results recorded so far came from.
    """

    def __init__(self, model: nn.Module, seed: int, lr: float):
        self.models, self.seeds = [model], [seed]
        # torch's default Adam, not fused=True: fused halves the optimiser's share of an MLP VAE step on CPU
        # (bench/throughput.py), but it rounds differently in the last bit, and K-Means on the latent is that
        # sensitive: on sweeps/easy.yaml it moved the VAE's per-seed ARI by more than its three-seed spread.
        # Kept bit-identical to the results already recorded.
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def train(self, mode: bool = True) -> None:
        self.models[0].train(mode)

    def step(self, data: Tensors, index: torch.Tensor, beta: float, free_bits: float) -> torch.Tensor:
        terms = elbo(self.models[0], data.batch(index[0]), beta, free_bits)
        self.optimizer.zero_grad()
        terms.loss.backward()
        self.optimizer.step()
        return terms.loss.detach().unsqueeze(0)

    def evaluate(self, data: Tensors, index: torch.Tensor, beta: float) -> torch.Tensor:
        terms = elbo(self.models[0], data.batch(index[0]), beta)
        return torch.stack([terms.loss, terms.reconstruction, terms.kl]).unsqueeze(0)

    def sync(self) -> None:
        """The model holds its weights itself."""

    load_models = sync

    def drop(self, keep: list[int]) -> None:
        self.models, self.seeds = [self.models[i] for i in keep], [self.seeds[i] for i in keep]

    def rng_states(self) -> list[dict]:
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return [state]

    def restore_rng(self, states: list[dict]) -> None:
        torch.set_rng_state(states[0]["torch"])
        if "cuda" in states[0] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states[0]["cuda"])


def _evaluate(stack: _Alone | Replicas, data: Tensors, index: torch.Tensor, beta: float) -> np.ndarray:
    """Mean negative ELBO, reconstruction and KL of each replica over its row of ``index``, in batches (bounded memory)."""
    stack.train(False)
    totals = np.zeros((index.shape[0], 3))
    with torch.no_grad():
        for start in range(0, index.shape[1], VALIDATION_BATCH):
            part = index[:, start : start + VALIDATION_BATCH]
            totals += stack.evaluate(data, part, beta).cpu().numpy().astype(np.float64) * part.shape[1]
    return totals / max(index.shape[1], 1)


def _snapshot(epoch: int, stack: _Alone | Replicas, seeds: list[int], histories: dict, shufflers: dict, failed: dict) -> TrainingState:
    """A copy, not references: state_dict() tensors are the live weights, which the next step changes in place."""
    stack.sync()
    weights = {seed: copy.deepcopy(model.state_dict()) for seed, model in zip(stack.seeds, stack.models)}
    noise = dict(zip(stack.seeds, stack.rng_states()))
    return TrainingState(
        epoch,
        list(seeds),
        [weights.get(seed, {}) for seed in seeds],
        copy.deepcopy(stack.optimizer.state_dict()),
        [list(histories[seed]) for seed in seeds],
        [{"shuffle": shufflers[seed].get_state(), **noise.get(seed, {})} for seed in seeds],
        {seed: str(error) for seed, error in failed.items()},
    )


def train_model(model: nn.Module, inputs: dict[str, np.ndarray], *, seed: int, on_epoch: Callable | None = None, **options: Any) -> list[EpochStats]:
    """Train one model (:func:`train_replicas`'s keywords): its history, or the error that stopped it, raised.

    ``on_epoch(stats, state)`` sees every epoch and, when due, a :class:`TrainingState` to checkpoint.
    """
    each = None if on_epoch is None else lambda stats, state: on_epoch(stats[0], state)
    (outcome,) = train_replicas([model], inputs, seeds=[seed], on_epoch=each, **options)
    if outcome.error is not None:
        raise outcome.error
    return outcome.history


def train_replicas(
    models: list[nn.Module],
    inputs: dict[str, np.ndarray],
    *,
    seeds: list[int],
    beta: float,
    epochs: int,
    lr: float,
    batch_size: int,
    val_fraction: float,
    device: torch.device,
    noise: list[torch.Tensor] | None = None,
    kl_warmup_epochs: int = 0,
    free_bits: float = 0.0,
    resume: TrainingState | None = None,
    checkpoint_every: int = 0,
    on_epoch: Callable[[list[EpochStats | None], TrainingState | None], None] | None = None,
) -> list[Outcome]:
    """Adam on reconstruction + β·KL, with a held-out split for the ELBO: ``models[i]`` under ``seeds[i]``.

    Each model was built right after ``seed_everything`` of its seed, and
    ``noise[i]`` is :func:`~musicvae.training.replicas.noise_state` just after model i
    was (needed for several; for one, the global generator is taken to be
    there already unless given). One model trains as itself; several (of an
    architecture that :func:`~musicvae.training.replicas.vectorises`) as one
    vectorised model. Each replica gets exactly what training it alone gives
    wherever :func:`~musicvae.training.replicas.exact` says so, which the caller checks first.

    A model with ``pretrain_epochs`` (VaDE) trains on the reconstruction alone
    for those epochs, then gets ``initialise_prior(posterior means of the
    training split)`` before the KL term (and its warm-up) begins.

    A replica whose loss becomes NaN or inf stops at that epoch; the others go
    on. ``on_epoch`` sees every epoch: each replica's stats (None once it has
    stopped) and, every ``checkpoint_every`` epochs and at the last one, a
    :class:`TrainingState` to checkpoint. ``resume`` continues from such a
    state: the result is the one an uninterrupted run would have given.
    Returns each replica's :class:`Outcome`.
    """
    n = len(next(iter(inputs.values())))
    splits = {}
    for seed in seeds:
        train_idx, val_idx = split_indices(n, val_fraction, seed)
        splits[seed] = (train_idx, train_idx if len(val_idx) == 0 else val_idx)  # no split asked for: report the training ELBO
    data = Tensors(inputs, device)
    shufflers = {seed: torch.Generator(device="cpu").manual_seed(seed) for seed in seeds}
    histories: dict[int, list[EpochStats]] = {seed: [] for seed in seeds}
    failed: dict[int, NonFiniteLossError] = {}
    first = 1
    if resume is not None:
        failed, first = _resume(resume, models, seeds, histories, shufflers)
    stack = _stack(models, seeds, [i for i, seed in enumerate(seeds) if seed not in failed], noise, lr, device, resume)

    pretrain = getattr(models[0], "pretrain_epochs", 0)  # VaDE: reconstruction alone first, then its prior from the latents
    for epoch in range(first, epochs + 1):
        if not stack.seeds:
            break
        if pretrain and epoch == pretrain + 1:
            _initialise_priors(stack, inputs, splits, device)
        epoch_beta = 0.0 if epoch <= pretrain else beta_at(epoch - pretrain, beta, kl_warmup_epochs)
        train_loss = _train_epoch(stack, data, splits, shufflers, batch_size, epoch_beta, free_bits, device)
        failed.update({s: NonFiniteLossError(f"loss became {v} at epoch {epoch} (lr={lr}, beta={beta})") for s, v in train_loss.items() if not np.isfinite(v)})
        stack.drop([i for i, seed in enumerate(stack.seeds) if seed not in failed])
        stats: dict[int, EpochStats] = {}
        if stack.seeds:
            val_index = torch.stack([torch.as_tensor(splits[seed][1]) for seed in stack.seeds])
            for seed, (val_loss, reconstruction, kl) in zip(stack.seeds, _evaluate(stack, data, val_index, beta)):
                if not np.isfinite(val_loss):
                    failed[seed] = NonFiniteLossError(f"validation loss became {val_loss} at epoch {epoch}")
                    continue
                stats[seed] = EpochStats(epoch, train_loss[seed], float(val_loss), float(reconstruction), float(kl), epoch_beta)
                histories[seed].append(stats[seed])
            stack.drop([i for i, seed in enumerate(stack.seeds) if seed not in failed])
        if on_epoch is not None and stats:
            due = checkpoint_every > 0 and (epoch % checkpoint_every == 0 or epoch == epochs)
            on_epoch([stats.get(seed) for seed in seeds], _snapshot(epoch, stack, seeds, histories, shufflers, failed) if due else None)
    stack.sync()
    return [Outcome(histories[seed], failed.get(seed)) for seed in seeds]


def _resume(
    resume: TrainingState, models: list[nn.Module], seeds: list[int], histories: dict[int, list[EpochStats]], shufflers: dict[int, torch.Generator]
) -> tuple[dict[int, NonFiniteLossError], int]:
    """Each replica's weights, history and shuffling generator as checkpointed; returns the failed replicas and the next epoch."""
    if resume.seeds != list(seeds):
        raise ValueError(f"the checkpoint is of seeds {resume.seeds}, not {list(seeds)}")
    failed = {seed: NonFiniteLossError(error) for seed, error in resume.failed.items()}
    for i, seed in enumerate(seeds):
        histories[seed] = list(resume.histories[i])
        shufflers[seed].set_state(resume.rng[i]["shuffle"])
        if seed not in failed:
            models[i].load_state_dict(resume.models[i])
    return failed, resume.epoch + 1


def _stack(
    models: list[nn.Module], seeds: list[int], live: list[int], noise: list[torch.Tensor] | None, lr: float, device: torch.device, resume: TrainingState | None
) -> _Alone | Replicas:
    """What trains: one model as itself, or the ``live`` replicas as one vectorised model; its optimiser and noise resumed."""
    for model in models:
        model.to(device)
    if len(models) == 1:
        stack: _Alone | Replicas = _Alone(models[0], seeds[0], lr)
        if noise is not None:  # other models were built since this one: its noise starts where its own build left the generator
            set_noise_state(noise[0], device)
    elif not vectorises(models[0]) or noise is None or len(noise) != len(models):
        raise ValueError(f"seeds of {type(models[0]).__name__} train together only if it vectorises, each with its noise_state")
    else:
        stack = Replicas([models[i] for i in live], [seeds[i] for i in live], [noise[i] for i in live], lr, device)
    if resume is not None:
        stack.optimizer.load_state_dict(resume.optimizer)
        stack.restore_rng([resume.rng[i] for i in live])
    return stack


def _initialise_priors(stack: _Alone | Replicas, inputs: dict[str, np.ndarray], splits: dict, device: torch.device) -> None:
    """VaDE after its pretraining: each replica's mixture prior from the posterior means of its training split."""
    stack.sync()
    for model, seed in zip(stack.models, stack.seeds):
        train_rows = {key: value[splits[seed][0]] for key, value in inputs.items()}
        model.initialise_prior(encode(model, train_rows, device)[0], seed=seed)
    stack.load_models()


def _train_epoch(
    stack: _Alone | Replicas,
    data: Tensors,
    splits: dict,
    shufflers: dict[int, torch.Generator],
    batch_size: int,
    epoch_beta: float,
    free_bits: float,
    device: torch.device,
) -> dict[int, float]:
    """One pass over each live replica's training split, in its own shuffled order; each replica's mean training loss.

    The epoch's losses are summed on the device and read once, at the end:
    reading or testing every batch's loss would make the host wait for the
    device at each step. In float64, so train_loss is what a sum of Python
    floats gave. A NaN or inf in any batch leaves the sum non-finite: the
    caller still fails the epoch it happened in (its remaining steps are
    wasted, on garbage weights).
    """
    stack.train()
    order = torch.stack([torch.as_tensor(splits[s][0])[torch.randperm(len(splits[s][0]), generator=shufflers[s])] for s in stack.seeds])
    order = order.to(data.home)
    total = torch.zeros(len(stack.seeds), dtype=torch.float64, device=device)
    for start in range(0, order.shape[1], batch_size):
        part = order[:, start : start + batch_size]
        total.add_(stack.step(data, part, epoch_beta, free_bits), alpha=part.shape[1])
    return dict(zip(stack.seeds, (value / order.shape[1] for value in total.tolist())))


def encode(model: nn.Module, inputs: dict[str, np.ndarray], device: torch.device, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray | None]:
    """Posterior means (the embedding: no sampling noise) and log-variances (None for an autoencoder) of every track."""
    model.to(device).eval()
    data = Tensors(inputs, device)
    n = len(next(iter(inputs.values())))
    mus, logvars = [], []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            mu, logvar = model.encode(data.batch(torch.arange(start, min(start + batch_size, n))))
            mus.append(mu.cpu().numpy())
            if logvar is not None:
                logvars.append(logvar.cpu().numpy())
    return np.concatenate(mus), (np.concatenate(logvars) if logvars else None)
