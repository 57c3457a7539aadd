"""A finished trial's pipeline, fitted: what the trial fitted gathered into a :class:`~musicvae.serving.pipeline.Pipeline`.

:func:`fit` takes the data's preprocessing, the model, the clustering space and
the clusterer made able to assign new points (the rules in
:mod:`musicvae.serving.pipeline`'s docstring); :func:`example_frame` is the
input example MLflow logs beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from musicvae.clustering.clusterers import Clustering
from musicvae.config.params import NEURAL_MODELS, TrialParams
from musicvae.data.dataset import FeatureSet
from musicvae.serving.pipeline import Pipeline, PipelineError


@dataclass(frozen=True)
class Fitted:
    """What a trial fitted besides its model's weights, for its pipeline (:func:`fit`)."""

    n_clusters: int | None
    space: np.ndarray = field(repr=False)  # what the clusterer saw, every track
    clustering: Clustering = field(repr=False)  # with its fitted estimator (IDEC: the refined model and its centres)
    pooled: np.ndarray | None = field(default=None, repr=False)  # the embedding before N2D's UMAP (pooled by group where it is)
    inputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # the neural model's input arrays (their shapes build it again)
    pca: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # PCA's components and mean


def fit(params: TrialParams, data: FeatureSet, fitted: Fitted | None, embedding: np.ndarray, model: nn.Module | None) -> Pipeline:
    """The pipeline of a finished trial: ``data``'s preprocessing, the trial's embedding model, clustering space and clusterer."""
    prep = data.preprocessing
    if prep is None or fitted is None:
        raise PipelineError("the trial has no record of its preprocessing (a FeatureSet built by hand): no pipeline")
    if params.model == "multimodal_vae" and prep.data.text is not None and prep.data.text.method != "sentence_transformer":
        # TF-IDF's vocabulary and SVD are fitted on the collection's own texts; they are not kept, so new texts could not be placed alike.
        raise PipelineError(f"a multimodal pipeline needs a fixed text embedder; data.text.method '{prep.data.text.method}' is fitted per collection")
    spec: dict[str, Any] = {
        "params": params.model_dump(mode="json"),
        "data": prep.data.model_dump(mode="json"),
        "checkpoints": prep.checkpoints,
        "n_clusters": fitted.n_clusters,
        "embedding_dim": int((fitted.pooled if fitted.pooled is not None else embedding).shape[1]),  # the model's, before UMAP
        "label_names": list(data.label_names),  # only to scrub label words from texts, as training did; never an input
        "settings": dict(fitted.clustering.params),
    }
    tensors: dict[str, np.ndarray] = {}
    spec["inputs"] = _fit_inputs(params, prep, tensors)
    if params.model == "pca":
        tensors.update({"pca.components": fitted.pca["components"], "pca.mean": fitted.pca["mean"]})
    elif params.model in NEURAL_MODELS:
        model = fitted.clustering.fitted["model"] if params.clusterer == "idec" else model  # IDEC assigns with its refined encoder
        spec["shapes"] = {key: list(value.shape[1:]) for key, value in fitted.inputs.items()}
        tensors.update({f"model.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    if params.manifold == "umap" and fitted.pooled is not None:
        tensors.update({"manifold.input": fitted.pooled, "manifold.coords": fitted.space})
    arrays = _clusterer_arrays(params, fitted.clustering, fitted.space)
    tensors.update({f"clusterer.{k}": np.asarray(v) for k, v in arrays.items()})
    return Pipeline(spec, tensors)


def _clusterer_arrays(params: TrialParams, clustering: Any, space: np.ndarray) -> dict[str, np.ndarray]:
    """What each clusterer keeps to assign new points (the rules in :mod:`musicvae.serving.pipeline`'s docstring)."""
    estimator, labels = clustering.fitted, clustering.labels
    kind = params.clusterer
    if kind == "kmeans":
        return {"centres": estimator.cluster_centers_}
    if kind == "gmm":
        return {
            "weights": estimator.weights_,
            "means": estimator.means_,
            "covariances": estimator.covariances_,
            "precisions_cholesky": estimator.precisions_cholesky_,
        }
    if kind == "idec":
        return {"centres": estimator["centres"]}
    if kind == "vade":
        return {}
    fitted = {"space": space, "labels": labels.astype(np.int64)}
    if kind == "dbscan":
        core = np.zeros(len(space), np.uint8)
        core[estimator.core_sample_indices_] = 1
        fitted["core"] = core
    if kind == "hdbscan":
        from sklearn.neighbors import NearestNeighbors

        k = min(params.min_samples, len(space))  # HDBSCAN's core distance: to the min_samples-th neighbour, the point itself counted
        fitted["core_distance"] = NearestNeighbors(n_neighbors=k).fit(space).kneighbors(space)[0][:, -1]
    return fitted


def _fit_inputs(params: TrialParams, prep: Any, tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    """The preprocessing of what the trial's model reads: its input vector, its spectrogram, its text."""
    inputs = {}
    if not params.uses_spectrogram:
        chosen = prep.inputs[params.input]
        inputs[params.input] = {"columns": chosen.columns, "standardised": chosen.mean is not None}
        if chosen.mean is not None:
            tensors.update({f"input.{params.input}.mean": chosen.mean, f"input.{params.input}.scale": chosen.scale})
    else:
        mean, std = prep.spectrograms[params.spectrogram]
        inputs[params.spectrogram] = {"standardised": mean is not None}
        if mean is not None:
            tensors.update({f"input.{params.spectrogram}.mean": mean, f"input.{params.spectrogram}.std": std})
    if params.model == "multimodal_vae":
        inputs["text"] = {"standardised": prep.text_mean is not None}
        if prep.text_mean is not None:
            tensors.update({"input.text.mean": prep.text_mean, "input.text.scale": prep.text_scale})
    return inputs


def example_frame(pipeline: Pipeline, data: FeatureSet, n: int = 3) -> pd.DataFrame:
    """The first ``n`` tracks as ``predict`` takes them (the model's input example in MLflow): id, file or feature values, metadata."""
    rows = data.text.head(n).reset_index(drop=True)
    frame = pd.DataFrame({"track_id": [str(t) for t in data.track_ids[:n]]})
    if not pipeline.takes_audio:  # the table's own values: the standardised features scaled back
        scaling = data.preprocessing.inputs["mfcc"]
        values = data.features[:n] * scaling.scale + scaling.mean if scaling.mean is not None else data.features[:n]
        frame = pd.concat([frame, pd.DataFrame(values, columns=scaling.columns)], axis=1)
    for column in pipeline.input_columns():
        if column not in frame:
            frame[column] = rows[column].astype(str) if column in rows else ""
    return frame
