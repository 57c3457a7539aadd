"""One trial, start to finish: features -> model -> embedding -> clusters -> metrics.

This is plain Python with no Ray in it, so it can be tested, debugged and
benchmarked on its own; :mod:`musicvae.sweep` wraps it for Tune.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from musicvae.clustering import cluster
from musicvae.config import TrialParams
from musicvae.dataset import FeatureSet
from musicvae.metrics import all_metrics
from musicvae.models.pca import pca_embedding
from musicvae.models.vae import MLPVAE
from musicvae.training import EpochStats, pick_device, posterior_mean, seed_everything, train_vae


@dataclass(frozen=True)
class TrialResult:
    metrics: dict[str, float]
    embedding: np.ndarray = field(repr=False)
    clusters: np.ndarray = field(repr=False)
    history: list[EpochStats] = field(default_factory=list, repr=False)


def resolve_n_clusters(params: TrialParams, data: FeatureSet) -> int:
    """k defaults to the number of labels; without labels it must be configured."""
    if params.n_clusters is not None:
        return params.n_clusters
    if data.n_labels is None:
        raise ValueError("the data has no labels, so n_clusters must be set in the sweep's space")
    return data.n_labels


def run_trial(
    params: TrialParams,
    data: FeatureSet,
    on_epoch: Callable[[EpochStats], None] | None = None,
    device: str = "auto",
) -> TrialResult:
    seed_everything(params.seed)
    n_clusters = resolve_n_clusters(params, data)
    start = time.perf_counter()
    history: list[EpochStats] = []
    extra: dict[str, float] = {}
    if params.model == "pca":
        embedding, explained = pca_embedding(data.features, params.latent_dim, seed=params.seed)
        extra["explained_variance"] = explained
    else:
        torch_device = pick_device(device)
        model = MLPVAE(data.features.shape[1], latent_dim=params.latent_dim, hidden_dim=params.hidden_dim)
        history = train_vae(
            model,
            data.features,
            beta=params.beta,
            epochs=params.epochs,
            lr=params.lr,
            batch_size=params.batch_size,
            val_fraction=params.val_fraction,
            seed=params.seed,
            device=torch_device,
            on_epoch=on_epoch,
        )
        embedding = posterior_mean(model, data.features, torch_device)
        last = history[-1]
        extra.update(val_loss=last.val_loss, reconstruction=last.reconstruction, kl=last.kl)
    fit_seconds = time.perf_counter() - start

    clusters = cluster(embedding, params.clusterer, n_clusters, seed=params.seed)
    metrics = all_metrics(embedding, clusters, data.labels, seed=params.seed)
    metrics.update(extra, n_clusters=float(n_clusters), embedding_dim=float(embedding.shape[1]), fit_seconds=fit_seconds)
    return TrialResult(metrics, embedding, clusters, history)
