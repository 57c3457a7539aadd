"""Trained models shared by the trials of a sweep: one training per model, and a method's seeds trained together.

A sweep over clusterers asks for the same network once per clusterer: the
same parameters, seed and data. Trained again it gives the same weights bit
for bit (training is seeded, and deterministic on one device), so the first
trial to train it stores it here and the others read it. On
``sweeps/hard.yaml`` that is 27 trainings instead of 81.

A method's seeds are the same network again, under other seeds. The trial
that trains one also trains, as replicas of one vectorised model
(:mod:`musicvae.training.replicas`), every other seed the sweep's plan runs that
model under, and stores each: the hard sweep's 27 trainings are 9 of three
seeds each. This fits Tune as it stands: every seed stays its own Tune
trial, with its own MLflow run, checkpoints, restarts and failure, and a
seed's results are the same whoever trained it, since a replica equals its
lone run to the bit. (One Tune trial per method would have had to rebuild
all of that around trials that hold several runs.) The grid runs a seed of
every method before the next seed (:func:`musicvae.config.params.grid_points`), so
by the time a seed's trial starts its model is usually stored.

There is no lock to wait on. A trial that finds nothing trains. It claims
the seeds it trains (a ``.claim`` file each) and leaves any seed another
trial has claimed to that one; a trial whose own seed is claimed but not yet
stored trains its own seed alone rather than wait (the same result, written
twice atomically). A trial killed or stopped by the scheduler mid-training
holds nothing anyone waits for. The store belongs to one sweep run (its
code, its data) and is deleted when the sweep finishes; a resumed sweep
finds what it had trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from musicvae.config.params import CLUSTERING_PARAMS, TrialParams
from musicvae.models import build_model
from musicvae.training import replicas
from musicvae.training.loop import EpochStats, NonFiniteLossError, Outcome, TrainingState, batch_sizes, encode, seed_everything, train_replicas
from musicvae.training.tensors import Tensors

SHARED_NOTE = "the model was trained once for every trial of this model, seed and data that clusters differently; fit_seconds is that training's"


@dataclass(frozen=True)
class TrainingHooks:
    """How a trial's model is trained and watched, handed from the Tune trainable down to the epoch loop in one piece.

    ``device``: "auto", "cpu" or "cuda"; ``on_epoch(stats, state)``: called after
    every epoch (``state`` is a checkpoint to report, every ``checkpoint_every``
    epochs, else None); ``resume``: the trial's own checkpoint to continue;
    ``models_dir``: the sweep's store of trained models (None: train here, store
    nothing); ``plan``: the sweep's planned trials, whose seeds of this model train
    together as replicas. The defaults train one model on the best device, silently.
    """

    device: str = "auto"
    on_epoch: Callable[[EpochStats, TrainingState | None], None] | None = None
    resume: TrainingState | None = None
    checkpoint_every: int = 0
    models_dir: Path | None = None
    plan: list[dict[str, Any]] | None = None


@dataclass
class TrainedModel:
    """A trained model in a form that can be stored: what the trials of one model and seed share."""

    state: dict  # the model's state_dict, on the CPU ({} for one that failed)
    embedding: np.ndarray | None
    logvar: np.ndarray | None
    history: list[EpochStats]
    metrics: dict[str, float]
    seeds: list[int] = field(default_factory=list)  # the seeds trained together with it (just its own when alone)
    error: str = ""  # why its training failed (NonFiniteLossError), which every trial of it reports


def training_params(params: TrialParams) -> dict[str, Any]:
    """What of a trial's parameters its training depends on: all but the clustering ones (VaDE's k sizes its prior)."""
    kept = {key: value for key, value in params.model_dump().items() if key not in CLUSTERING_PARAMS}
    return kept | ({"n_clusters": params.n_clusters} if params.model == "vade" else {})


def model_key(params: TrialParams, inputs: dict[str, np.ndarray], n_components: int | None, device: torch.device) -> str:
    """The identity of a training run: its parameters (clustering ones left out), the arrays it trains on, where it runs.

    The device type and torch's thread count are part of it: a GPU's kernels round differently from the
    CPU's, and a matrix product split over threads may too (on this 2-core machine 1 and 2 threads gave
    the same multimodal VAE to the bit, but that is the library's choice); K-Means on a latent space
    notices the last bit.
    """
    training = training_params(params)
    where = {"n_components": n_components, "device": device.type, "threads": torch.get_num_threads()}
    digest = hashlib.blake2b(digest_size=16)
    digest.update(json.dumps({**training, **where}, sort_keys=True).encode())
    for name in sorted(inputs):
        array = np.ascontiguousarray(inputs[name])
        digest.update(f"{name}{array.shape}{array.dtype}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def load(directory: Path | None, key: str) -> TrainedModel | None:
    """The stored model for ``key``, or None (no store, never trained, or unreadable: train it again)."""
    if directory is None or not (path := directory / f"{key}.pt").exists():
        return None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - a damaged entry is a cache miss; the trial trains and rewrites it
        return None
    return TrainedModel(**{**raw, "history": [EpochStats(**h) for h in raw["history"]]})


def save(directory: Path | None, key: str, trained: TrainedModel) -> None:
    """Store ``trained`` under ``key``: written to a temporary file and renamed, so a reader sees all of it or nothing."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    raw = {**vars(trained), "history": [vars(h) for h in trained.history]}
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".part")
    os.close(handle)
    torch.save(raw, temporary)
    os.replace(temporary, directory / f"{key}.pt")


def claim(directory: Path | None, key: str) -> bool:
    """Claim the training of ``key`` for this trial: False if another trial has (an atomic create), or it is stored."""
    if directory is None or (directory / f"{key}.pt").exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(directory / f"{key}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def planned_seeds(params: TrialParams, plan: list[dict[str, Any]]) -> list[int]:
    """The seeds under which the sweep's ``plan`` (its grid points) trains this very model, ``params.seed`` first.

    A grid point names the values of the space's lists; the constants are every trial's, so the point laid
    over ``params`` is that trial's configuration.
    """
    mine = {**training_params(params), "seed": None}
    seeds = [params.seed]
    for point in plan:
        try:
            other = TrialParams(**{**params.model_dump(), **point})
        except ValueError:  # not a configuration this trial's constants allow (that trial fails alone)
            continue
        if other.seed not in seeds and {**training_params(other), "seed": None} == mine:
            seeds.append(other.seed)
    return seeds


@dataclass
class Obtained:
    """A trial's trained model: the model, what was stored of it, and whether another trial trained it."""

    model: nn.Module
    trained: TrainedModel
    shared: bool

    @property
    def note(self) -> str:
        """What ``fit_seconds`` is, where it is not this trial's own training time."""
        if len(seeds := self.trained.seeds) > 1:
            who = "by another trial " if self.shared else ""
            return f"trained {who}as one vectorised model with seeds {', '.join(map(str, seeds))}; fit_seconds is this seed's share of that training"
        return SHARED_NOTE if self.shared else ""


def obtain(
    params: TrialParams,
    inputs: dict[str, np.ndarray],
    n_components: int | None,
    device: torch.device,
    hooks: TrainingHooks = TrainingHooks(),
) -> Obtained:
    """The trained model of ``params``: read from ``hooks.models_dir``, or trained here, with the planned seeds it can share training with.

    A model found there has its epochs replayed to ``on_epoch`` (a scheduler
    sees the same curve); one whose training failed raises that failure after
    them. One trained here is stored there, with the replicas trained beside
    it. ``resume`` continues this trial's own training from its checkpoint
    (all the replicas it holds).
    """

    def key_of(p: TrialParams) -> str:
        return model_key(p, inputs, n_components, device)

    directory, resume, on_epoch = hooks.models_dir, hooks.resume, hooks.on_epoch
    key = key_of(params)
    beta = 0.0 if params.model == "ae" else params.beta
    if resume is None and (stored := load(directory, key)) is not None:
        for stats in stored.history if on_epoch is not None else ():
            on_epoch(stats, None)
        if stored.error:  # what training it alone raised, after the same epochs
            raise NonFiniteLossError(stored.error)
        model = build_model(params, inputs, n_components)
        model.load_state_dict(stored.state)
        return Obtained(model.to(device), stored, shared=True)

    seeds, models, noise = _replica_set(params, inputs, n_components, device, hooks, key_of, beta)
    start = time.perf_counter()
    options = {key: getattr(params, key) for key in ("epochs", "lr", "batch_size", "val_fraction", "kl_warmup_epochs", "free_bits")}
    me = seeds.index(params.seed)
    report = None if on_epoch is None else lambda stats, state: on_epoch(stats[me], state) if stats[me] is not None else None
    outcomes = train_replicas(
        models,
        inputs,
        seeds=seeds,
        noise=noise,
        beta=beta,
        device=device,
        resume=resume,
        checkpoint_every=hooks.checkpoint_every,
        on_epoch=report,
        **options,
    )
    share = (time.perf_counter() - start) / len(seeds)
    for seed, model, outcome in zip(seeds, models, outcomes):
        trained = _stored_form(model, inputs, device, outcome, share, seeds)
        seed_key = key if seed == params.seed else key_of(params.model_copy(update={"seed": seed}))
        save(directory, seed_key, trained)
        if directory is not None:
            (directory / f"{seed_key}.claim").unlink(missing_ok=True)
        if seed == params.seed:
            mine = trained
    if mine.error:
        raise NonFiniteLossError(mine.error)
    return Obtained(models[me], mine, shared=False)


def _replica_set(
    params: TrialParams,
    inputs: dict[str, np.ndarray],
    n_components: int | None,
    device: torch.device,
    hooks: TrainingHooks,
    key_of: Callable,
    beta: float,
) -> tuple[list[int], list[nn.Module], list[torch.Tensor]]:
    """The seeds this trial trains, each model built under its seed with its noise state: its own seed (or, resumed, the
    checkpoint's), and with a store and a plan the planned seeds it can claim, if their replicas train exactly."""
    directory, key = hooks.models_dir, key_of(params)
    seeds, models, noise, claimed = [], [], [], []

    def build(seed: int) -> None:  # right after seeding, as a lone run builds it, and where its noise starts
        seeds.append(seed)
        seed_everything(seed)
        models.append(build_model(params.model_copy(update={"seed": seed}), inputs, n_components))
        noise.append(replicas.noise_state(device))

    for seed in hooks.resume.seeds if hooks.resume is not None else [params.seed]:
        build(seed)
    if hooks.resume is None and directory is not None and hooks.plan and replicas.vectorises(models[0]) and claim(directory, key):
        for seed in planned_seeds(params, hooks.plan)[1:]:
            if claim(directory, sibling := key_of(params.model_copy(update={"seed": seed}))):
                build(seed)
                claimed.append(sibling)
        sizes = batch_sizes(len(next(iter(inputs.values()))), params.val_fraction, params.batch_size)
        if len(seeds) > 1 and not replicas.exact(models, Tensors(inputs, device), sizes, beta, params.free_bits, device):
            for sibling in claimed:  # left to their own trials, which train them alone
                (directory / f"{sibling}.claim").unlink(missing_ok=True)
            seeds, models, noise = seeds[:1], models[:1], noise[:1]
    return seeds, models, noise


def _stored_form(model: nn.Module, inputs: dict[str, np.ndarray], device: torch.device, outcome: Outcome, seconds: float, seeds: list[int]) -> TrainedModel:
    """A replica's outcome as stored: its weights, posterior means, history and final losses; or its failure."""
    if outcome.error is not None:
        return TrainedModel({}, None, None, outcome.history, {}, seeds, str(outcome.error))
    embedding, logvar = encode(model, inputs, device)
    last = outcome.history[-1]
    metrics = {"val_loss": last.val_loss, "reconstruction": last.reconstruction, "kl": last.kl, "fit_seconds": seconds}
    state = {name: tensor.cpu() for name, tensor in model.state_dict().items()}
    return TrainedModel(state, embedding, logvar, outcome.history, metrics, seeds)
