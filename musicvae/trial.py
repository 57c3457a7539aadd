"""One trial, start to finish: features -> model -> embedding -> clusters -> metrics -> artifacts.

This is plain Python with no Ray in it, so it can be tested, debugged and
benchmarked on its own; :mod:`musicvae.tune.sweep` wraps it for Tune.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from musicvae.clustering.clusterers import Clustering, cluster, resample_stability
from musicvae.clustering.idec import refine
from musicvae.clustering.manifold import clustering_space, pooled_space
from musicvae.config.params import K_CLUSTERERS, TrialParams, model_title, trial_title
from musicvae.config.sections import SelectionConfig, TrialsConfig
from musicvae.data.dataset import FeatureSet
from musicvae.evaluation.disentanglement import DisentanglementReport, analyse_latents
from musicvae.evaluation.metrics import DEGENERATE_SHARE, all_metrics, input_metrics, sample_rows
from musicvae.models.pca import fit_pca
from musicvae.models.vade import VaDE
from musicvae.reporting.trial_projection import save_projection
from musicvae.serving.fitting import Fitted, example_frame, fit
from musicvae.serving.pipeline import ARTIFACT, PipelineError, save_mlflow_model
from musicvae.training import trained_models
from musicvae.training.loop import EpochStats, pick_device, seed_everything
from musicvae.training.trained_models import TrainingHooks


@dataclass(frozen=True)
class TrialResult:
    metrics: dict[str, float]
    notes: dict[str, str]  # why a metric is NaN, what a clusterer chose
    embedding: np.ndarray = field(repr=False)
    clusters: np.ndarray = field(repr=False)
    latents: DisentanglementReport = field(repr=False)
    history: list[EpochStats] = field(default_factory=list, repr=False)
    model: nn.Module | None = field(default=None, repr=False)
    fitted: Fitted | None = field(default=None, repr=False)


def resolve_n_clusters(params: TrialParams, data: FeatureSet) -> int | None:
    """k defaults to the number of labels; without labels it must be configured. DBSCAN/HDBSCAN find their own."""
    if params.clusterer not in K_CLUSTERERS:
        return None
    if params.n_clusters is not None:
        return params.n_clusters
    if data.n_labels is None:
        raise ValueError("the data has no labels, so n_clusters must be set in the sweep's space")
    return data.n_labels


def model_inputs(params: TrialParams, data: FeatureSet) -> dict[str, np.ndarray]:
    """The arrays a neural model trains on, by batch key (see :mod:`musicvae.models.vae`)."""
    inputs: dict[str, np.ndarray] = {}
    if params.uses_spectrogram:
        if params.spectrogram not in data.spectrograms:
            raise ValueError(f"model {params.model} needs '{params.spectrogram}' spectrograms; add it to data.audio.features")
        inputs["spectrogram"] = data.spectrograms[params.spectrogram]
    else:
        inputs["features"] = data.input(params.input)
    if params.model == "multimodal_vae":
        if data.text_embeddings is None or data.text_missing is None:
            raise ValueError("multimodal_vae needs the text modality (data.text in the sweep file)")
        inputs["text"] = data.text_embeddings
        inputs["text_mask"] = (~data.text_missing).astype(np.float32)
    return inputs


@dataclass(frozen=True)
class Embedded:
    """A trained (or fitted) representation: what the clusterers of one model and seed share."""

    embedding: np.ndarray = field(repr=False)
    metrics: dict[str, float]
    logvar: np.ndarray | None = field(default=None, repr=False)
    history: list[EpochStats] = field(default_factory=list, repr=False)
    model: nn.Module | None = field(default=None, repr=False)
    shared: bool = False  # read from the sweep's trained models (:mod:`musicvae.training.trained_models`), not trained by this trial
    note: str = ""  # what fit_seconds is, where it is not this trial's own training time
    pca: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # PCA's components and mean (model pca)


def embed(
    params: TrialParams,
    data: FeatureSet,
    hooks: TrainingHooks = TrainingHooks(),
) -> Embedded:
    """The representation: the features themselves, PCA, or a trained model's posterior means.

    ``hooks`` say how a neural model trains (:class:`~musicvae.training.trained_models.TrainingHooks`).
    With ``hooks.models_dir`` a neural model is trained once for all the trials that
    cluster it differently, and together with the seeds the sweep's ``plan``
    trains it under (:mod:`musicvae.training.trained_models`): one found there is
    loaded, and its epochs are replayed to ``on_epoch`` so a scheduler sees the
    same curve; those trained here are stored there.
    """
    seed_everything(params.seed)
    start = time.perf_counter()
    metrics: dict[str, float] = {}
    if params.model == "raw":
        return Embedded(data.input(params.input), {"fit_seconds": time.perf_counter() - start})
    if params.model == "pca":
        embedding, pca = fit_pca(data.input(params.input), params.latent_dim, seed=params.seed)
        metrics["explained_variance"] = float(pca.explained_variance_ratio_.sum())
        arrays = {"components": pca.components_, "mean": pca.mean_}
        return Embedded(embedding, {**metrics, "fit_seconds": time.perf_counter() - start}, pca=arrays)
    got = trained_models.obtain(params, model_inputs(params, data), params.n_clusters or data.n_labels, pick_device(hooks.device), hooks)
    trained = got.trained
    return Embedded(trained.embedding, trained.metrics, trained.logvar, trained.history, got.model, got.shared, got.note)


def evaluate(
    params: TrialParams,
    data: FeatureSet,
    embedded: Embedded,
    *,
    silhouette_sample: int | None = 10000,
    selection: SelectionConfig | None = None,
    cache_dir: Path | None = None,
) -> TrialResult:
    """Cluster the embedding and score it: own-space metrics, the label-free scores selection compares, labels if known.

    The clusterer gets :func:`~musicvae.clustering.manifold.clustering_space` of the
    embedding (pooled by metadata group, mapped by UMAP, when configured);
    clusterer ``idec`` instead refines a copy of the trained model and
    clusters its refined embedding, and ``vade`` reads VaDE's own q(c|x). The
    latent analysis is of the model's own embedding. UMAP fits and the latent
    analysis's mutual information are cached in ``cache_dir``.

    Besides the metrics in the trial's own embedding it records the same
    clustering scored in the z-scored inputs on the sweep's shared row sample
    (``input_silhouette``, ``input_calinski_harabasz``: comparable across
    trials, unlike the own-space ones) and its ``resample_stability``.
    """
    selection = selection or SelectionConfig()
    n_clusters = resolve_n_clusters(params, data)
    start = time.perf_counter()
    options = {"linkage": params.linkage, "eps": params.eps, "min_samples": params.min_samples}
    pooled = None
    if params.clusterer == "idec":
        embedding, clustering, idec_metrics = idec_clusters(params, data, embedded, n_clusters)
        metrics = {**embedded.metrics, **idec_metrics, "space_seconds": 0.0}
        stability_method = "kmeans"  # of the refined embedding: refining anew per subsample would train two more models
    elif params.clusterer == "vade":
        embedding, clustering = embedded.embedding, vade_clusters(params, embedded)
        metrics = {**embedded.metrics, "space_seconds": 0.0}
        stability_method = "gmm"  # VaDE's prior is a mixture; the subsamples refit one rather than retrain the model
    else:
        pooled = pooled_space(params, embedded.embedding, data.groups)
        embedding = clustering_space(params, pooled, None, cache_dir)  # already pooled: UMAP's stage, where there is one
        metrics = {**embedded.metrics, "space_seconds": time.perf_counter() - start}
        start = time.perf_counter()
        clustering, stability_method = cluster(embedding, params.clusterer, n_clusters, seed=params.seed, **options), params.clusterer
    scores = all_metrics(embedding, clustering.labels, data.labels, silhouette_sample=silhouette_sample, seed=params.seed)
    metrics["cluster_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    rows = sample_rows(len(embedding), selection.sample, selection.seed)
    comparable = input_metrics(list(data.inputs.values()), clustering.labels, rows)
    options["eps"] = clustering.params.get("eps", params.eps)  # both subsamples use the radius chosen on all rows
    metrics["resample_stability"] = resample_stability(embedding, stability_method, n_clusters, params.seed, selection.subsample, **options)
    metrics["selection_seconds"] = time.perf_counter() - start
    latents = analyse_latents(embedded.embedding, embedded.logvar, data.labels, seed=params.seed, cache_dir=cache_dir)
    metrics.update(scores.values, **comparable.values, **latents.metrics(), **{f"chosen_{k}": v for k, v in clustering.params.items()})
    metrics.update(embedding_dim=float(embedding.shape[1]), trial_seconds=metrics["fit_seconds"] + metrics["space_seconds"] + metrics["cluster_seconds"])
    if n_clusters is not None:
        metrics["n_clusters"] = float(n_clusters)
    notes = {**scores.notes, **comparable.notes, **({"fit_seconds": embedded.note} if embedded.note else {})}
    inputs = model_inputs(params, data) if embedded.model is not None else {}
    fitted = Fitted(n_clusters, embedding, clustering, pooled, inputs, embedded.pca)
    return TrialResult(metrics, notes, embedding, clustering.labels, latents, embedded.history, embedded.model, fitted)


def idec_clusters(params: TrialParams, data: FeatureSet, embedded: Embedded, n_clusters: int) -> tuple[np.ndarray, Clustering, dict[str, float]]:
    """IDEC on the trained model (:mod:`musicvae.clustering.idec`): the refined embedding, its clusters and what the refinement did."""
    if embedded.model is None:
        raise ValueError(f"clusterer idec refines a trained encoder; model '{params.model}' has none (use kmeans, or a neural model)")
    model = copy.deepcopy(embedded.model)  # the trained model stays as it was for the artifacts and other clusterers
    device = next(model.parameters()).device
    beta = 0.0 if params.model == "ae" else params.beta
    options = {"gamma": params.idec_gamma, "epochs": params.idec_epochs, "lr": params.idec_lr, "batch_size": params.batch_size}
    result = refine(model, model_inputs(params, data), n_clusters, beta=beta, seed=params.seed, device=device, **options)
    refined = Clustering(result.labels, fitted={"model": model, "centres": result.centres})
    return result.embedding, refined, {"idec_epochs_run": float(result.epochs), "idec_changed": result.changed}


def vade_clusters(params: TrialParams, embedded: Embedded) -> Clustering:
    """VaDE's own clusters, argmax q(c|x); a collapse to one component is the trial's failure, with its size."""
    model = embedded.model
    if not isinstance(model, VaDE):
        raise ValueError(f"clusterer vade reads VaDE's cluster posterior; model '{params.model}' is not vade (use model: vade)")
    device = next(model.parameters()).device
    with torch.no_grad():
        labels = model.responsibilities(torch.as_tensor(embedded.embedding, device=device)).argmax(dim=1).cpu().numpy()
    largest = np.bincount(labels).max() / len(labels)
    if largest >= DEGENERATE_SHARE:
        raise VaDECollapse(
            f"VaDE collapsed: q(c|x) puts {largest:.0%} of the tracks in one of {len(model.logits)} components "
            f"(try more vade_pretrain_epochs, a lower beta or lr)"
        )
    return Clustering(labels)


class VaDECollapse(RuntimeError):
    """VaDE's mixture prior collapsed onto one component: a failed trial, never a silent one-cluster result."""


def run_trial(
    params: TrialParams,
    data: FeatureSet,
    *,
    silhouette_sample: int | None = 10000,
    selection: SelectionConfig | None = None,
    cache_dir: Path | None = None,
    hooks: TrainingHooks = TrainingHooks(),
) -> TrialResult:
    """Embed (trained as ``hooks`` say), cluster and score; ``cache_dir`` as in :func:`evaluate`."""
    resolve_n_clusters(params, data)  # fail on a missing k before training, not after
    embedded = embed(params, data, hooks)
    return evaluate(params, data, embedded, silhouette_sample=silhouette_sample, selection=selection, cache_dir=cache_dir)


def run_and_save(
    params: TrialParams,
    data: FeatureSet,
    directory: Path,
    trials: TrialsConfig,
    *,
    selection: SelectionConfig | None = None,
    cache_dir: Path | None = None,
    hooks: TrainingHooks = TrainingHooks(),
) -> tuple[TrialResult, dict[str, float]]:
    """One trial as a sweep runs it: :func:`run_trial`, then :func:`write_artifacts` into ``directory``.

    What the Tune trainable and ``bench/sweep_overhead.py`` both call, so the
    benchmark's plain loop does the very work of a sweep's trial. ``trials``
    says how (checkpoints, silhouette sample, figures); ``cache_dir`` is the
    sweep's cache (UMAP inputs under ``manifolds/``, projections under ``projections/``);
    ``hooks`` say how the model trains (checkpoints every ``trials.checkpoint_every`` epochs).
    Returns the result and the seconds the artifacts took.
    """
    manifolds, projections = (cache_dir / "manifolds", cache_dir / "projections") if cache_dir else (None, None)
    hooks = dataclasses.replace(hooks, checkpoint_every=trials.checkpoint_every)
    result = run_trial(params, data, silhouette_sample=trials.silhouette_sample, selection=selection, cache_dir=manifolds, hooks=hooks)
    drawing = {"figures": trials.figures, "figure_points": trials.figure_points, "seed": params.seed, "cache_dir": projections}
    timing = write_artifacts(result, data, directory, title=trial_title(params), model_title=model_title(params), **drawing)
    if data.preprocessing is not None:  # a FeatureSet read from a source (not built by hand) knows how to repeat its preprocessing
        start = time.perf_counter()
        save_pipeline(params, data, result, directory / ARTIFACT)
        timing["pipeline_seconds"] = time.perf_counter() - start
    return result, timing


def save_pipeline(params: TrialParams, data: FeatureSet, result: TrialResult, path: Path) -> None:
    """The trial's fitted pipeline as an MLflow model at ``path`` (:mod:`musicvae.serving.pipeline`), its input example the first tracks."""
    try:
        pipeline = fit(params, data, result.fitted, result.embedding, result.model)
    except PipelineError as exc:  # a trial that cannot be applied to new tracks is still a result; its run says why it has no pipeline
        path.with_suffix(".txt").write_text(f"No pipeline: {exc}\n")
        return
    save_mlflow_model(pipeline, path, example_frame(pipeline, data))


def read_embedding(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A trial's clusters and embedding (all tracks, in the data's order) from the ``embedding.parquet`` it wrote."""
    table = pd.read_parquet(Path(directory) / "embedding.parquet")
    return table["cluster"].to_numpy(), table.filter(regex=r"^z\d+$").to_numpy(np.float32)


def write_artifacts(
    result: TrialResult,
    data: FeatureSet,
    directory: str | Path,
    *,
    figures: list[str],
    figure_points: int = 3000,
    seed: int = 0,
    title: str = "",
    model_title: str = "",
    cache_dir: Path | None = None,
) -> dict[str, float]:
    """What a trial leaves for MLflow: embedding (Parquet), latent analysis (JSON), figures (PNG), the model.

    UMAP/t-SNE only where ``figures`` lists them (:mod:`musicvae.reporting.trial_projection`:
    by default the sweep draws them afterwards for the trials it shows); their
    coordinates are saved too (``projection.parquet``), so sweep-level figures
    such as the β grid reuse them instead of running UMAP again. The latent
    analysis is of the model, titled ``model_title``: drawn once per model and
    seed in ``cache_dir`` and copied for its other clusterers.
    Returns the seconds spent, to be reported apart from the trial's own time.
    """
    from musicvae.reporting.projection import PROJECTIONS

    start = time.perf_counter()
    directory = Path(directory)
    (directory / "figures").mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(result.embedding, columns=[f"z{i:02d}" for i in range(result.embedding.shape[1])])
    table.insert(0, "cluster", result.clusters)
    table.insert(0, "track_id", data.track_ids)
    if data.labels is not None:
        table.insert(2, "genre", np.asarray(data.label_names)[data.labels])  # for reading the file; never a feature
    table.to_parquet(directory / "embedding.parquet", index=False)
    (directory / "latents.json").write_text(json.dumps(result.latents.to_dict()))

    methods = tuple(m for m in PROJECTIONS if m in figures)
    if methods:
        options = {"methods": methods, "label_names": data.label_names, "cache_dir": cache_dir}
        save_projection(table, directory, figure_points=figure_points, seed=seed, title=title, **options)
    if "disentanglement" in figures:
        save_latents_figure(result.latents, directory / "figures" / "latents.png", model_title or title, cache_dir)
    return {"artifact_seconds": time.perf_counter() - start}


def save_latents_figure(latents: DisentanglementReport, path: Path, title: str, cache_dir: Path | None) -> None:
    """The latent analysis figure at ``path``: drawn once per distinct analysis and title in ``cache_dir``, copied from there after.

    Drawing it takes longer than clustering (matplotlib's layout), and every clusterer of one model and seed has the same analysis.
    """
    from musicvae.reporting import figures as fig

    if cache_dir is None:
        fig.save_figure(fig.disentanglement_figure(latents, title=title), path)
        return
    key = hashlib.blake2b(json.dumps([latents.to_dict(), title], sort_keys=True).encode(), digest_size=16).hexdigest()
    cached = cache_dir / f"latents-{key}.png"
    if not cached.exists():
        drawn = fig.save_figure(fig.disentanglement_figure(latents, title=title), cache_dir / f"latents-{key}.{os.getpid()}.part.png")
        os.replace(drawn, cached)  # whole or absent, for a trial drawing the same figure beside this one
    shutil.copyfile(cached, path)
