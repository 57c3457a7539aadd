"""Trained models shared by the trials that differ only in how they cluster.

A sweep over clusterers asks for the same network once per clusterer: the
same parameters, seed and data. Trained again it gives the same weights bit
for bit (training is seeded, and deterministic on one device), so the first
trial to train it stores it here and the others read it. On
``sweeps/hard.yaml`` that is 27 trainings instead of 81.

There is no lock: a trial that finds nothing trains. Two trials that need the
same model at the same moment both train it (the same result, written twice
atomically), and a trial killed or stopped by the scheduler mid-training
holds nothing anyone waits for. The store belongs to one sweep run (its code,
its data) and is deleted when the sweep finishes; a resumed sweep finds what
it had trained.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from musicvae.params import CLUSTERING_PARAMS, TrialParams
from musicvae.training import EpochStats

SHARED_NOTE = "the model was trained once for every trial of this model, seed and data that clusters differently; fit_seconds is that training's"


@dataclass
class TrainedModel:
    """What :func:`musicvae.trial.embed` returns for a neural model, in a form that can be stored."""

    state: dict  # the model's state_dict, on the CPU
    embedding: np.ndarray
    logvar: np.ndarray | None
    history: list[EpochStats]
    metrics: dict[str, float]


def model_key(params: TrialParams, inputs: dict[str, np.ndarray], n_components: int | None, device: torch.device) -> str:
    """The identity of a training run: its parameters (clustering ones left out), the arrays it trains on, where it runs.

    The device type and torch's thread count are part of it: a GPU's kernels round differently from the
    CPU's, and a matrix product split over threads may too (on this 2-core machine 1 and 2 threads gave
    the same multimodal VAE to the bit, but that is the library's choice); K-Means on a latent space
    notices the last bit.
    """
    training = {key: value for key, value in params.model_dump().items() if key not in CLUSTERING_PARAMS}
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
    return TrainedModel(raw["state"], raw["embedding"], raw["logvar"], [EpochStats(**h) for h in raw["history"]], raw["metrics"])


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
