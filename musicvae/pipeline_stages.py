"""The stages of a fitted :class:`~musicvae.pipeline.Pipeline`: fitting one from a finished trial, and each step of applying it.

:func:`fit` gathers what a trial fitted (the data's preprocessing, the model,
the clustering space and the clusterer) into a pipeline. Applying one is
:func:`features` -> :func:`embed` -> :func:`clustering_space` -> :func:`assign`,
each the trial's own computation where one exists (the same extraction, the
same scaler, the same network), so the tracks a trial clustered get its clusters back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musicvae.params import NEURAL_MODELS, TrialParams
from musicvae.pipeline import NOISE, Pipeline, PipelineError

if TYPE_CHECKING:
    import torch

    from musicvae.dataset import FeatureSet
    from musicvae.trial import TrialResult

UMAP_NEIGHBOURS = 15  # fitted points a new point's UMAP coordinates are interpolated from


def fit(params: TrialParams, data: FeatureSet, result: TrialResult) -> Pipeline:
    """The pipeline of a finished trial: ``data``'s preprocessing, ``result``'s model, clustering space and clusterer."""
    prep, fitted = data.preprocessing, result.fitted
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
        "embedding_dim": int((fitted.pooled if fitted.pooled is not None else result.embedding).shape[1]),  # the model's, before UMAP
        "label_names": list(data.label_names),  # only to scrub label words from texts, as training did; never an input
        "settings": dict(fitted.clustering.params),
    }
    tensors: dict[str, np.ndarray] = {}
    spec["inputs"] = _fit_inputs(params, prep, tensors)
    if params.model == "pca":
        tensors.update({"pca.components": fitted.pca["components"], "pca.mean": fitted.pca["mean"]})
    elif params.model in NEURAL_MODELS:
        model = fitted.clustering.fitted["model"] if params.clusterer == "idec" else result.model  # IDEC assigns with its refined encoder
        spec["shapes"] = {key: list(value.shape[1:]) for key, value in fitted.inputs.items()}
        tensors.update({f"model.{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    if params.manifold == "umap" and fitted.pooled is not None:
        tensors.update({"manifold.input": fitted.pooled, "manifold.coords": fitted.space})
    arrays = _clusterer_arrays(params, fitted.clustering, fitted.space)
    tensors.update({f"clusterer.{k}": np.asarray(v) for k, v in arrays.items()})
    return Pipeline(spec, tensors)


def _clusterer_arrays(params: TrialParams, clustering: Any, space: np.ndarray) -> dict[str, np.ndarray]:
    """What each clusterer keeps to assign new points (the rules in :mod:`musicvae.pipeline`'s docstring)."""
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


# ---------------------------------------------------------------------- 1. features


def features(pipeline: Pipeline, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[str]]:
    """The standardised arrays the model reads, by name (an input's name, a spectrogram kind, ``text``), and an error per row."""
    raw, errors = _audio_features(pipeline, frame) if pipeline.takes_audio else _table_features(pipeline, frame)
    out = {}
    for name, setting in pipeline.spec["inputs"].items():
        if name == "text":
            continue
        values = raw[name]
        if setting["standardised"] and values.ndim == 3:  # a spectrogram: per row over tracks and frames, as dataset.standardize_rows
            mean, std = pipeline.tensors[f"input.{name}.mean"], pipeline.tensors[f"input.{name}.std"]
            values = ((values - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)
        elif setting["standardised"]:
            values = _scaled(values, pipeline.tensors[f"input.{name}.mean"], pipeline.tensors[f"input.{name}.scale"])
        out[name] = values
    if "text" in pipeline.spec["inputs"]:
        out["text"], out["text_mask"] = _text(pipeline, frame)
    return out, errors


def _scaled(values: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``StandardScaler.transform`` with the fitted mean and scale: the very computation the data was standardised with."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = mean, scale, scale**2
    scaler.n_features_in_, scaler.n_samples_seen_ = len(mean), 2
    return scaler.transform(values).astype(np.float32)


def _table_features(pipeline: Pipeline, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[str]]:
    pipeline.check(frame)
    columns = pipeline.spec["inputs"]["mfcc"]["columns"]
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)
    errors = ["missing or non-numeric feature values" if not np.isfinite(row).all() else "" for row in values]
    return {"mfcc": np.nan_to_num(values)}, errors


def _audio_features(pipeline: Pipeline, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[str]]:
    """Decode and extract as the sweep did (the same settings), for the inputs and spectrogram the model reads."""
    from musicvae.features.audio import PATCHES, AudioError, extract_file, feature_names, musicnn_features

    pipeline.check(frame)
    wanted = list(pipeline.spec["inputs"])
    kinds = ["mfcc", *(k for k in ("mfcc_spectrogram", "logmel") if k in wanted), *(["musicnn"] if any(w.startswith("musicnn_") for w in wanted) else [])]
    cfg = pipeline.data.audio.model_copy(update={"features": kinds})  # only what this pipeline's model reads is extracted
    names = feature_names(cfg)
    values: dict[str, list[np.ndarray]] = {name: [] for name in wanted if name != "text"}
    patches, errors = [], []
    for path in frame["path"].astype(str):
        try:
            extracted = extract_file(path, cfg)
            errors.append("")
        except AudioError as exc:
            extracted = {}
            errors.append(str(exc))
        patches.append(extracted.get(PATCHES))
        for name in values:
            values[name].append(extracted.get(name))
    ok = [i for i, e in enumerate(errors) if not e]
    if any(name.startswith("musicnn_") for name in values) and ok:
        computed = musicnn_features([patches[i] for i in ok], cfg, _checked_weights(pipeline))
        for name in values:
            if name in computed:
                for row, i in enumerate(ok):
                    values[name][i] = computed[name][row]
    out = {}
    for name, rows in values.items():
        shape = next((v.shape for v in rows if v is not None), (0,))
        stacked = np.stack([v if v is not None else np.zeros(shape, np.float32) for v in rows]) if rows else np.zeros((0, *shape), np.float32)
        if name in names:  # a vector: the columns the pipeline kept, by name
            position = {column: j for j, column in enumerate(names[name])}
            stacked = stacked[:, [position[c] for c in pipeline.spec["inputs"][name]["columns"]]]
        out[name] = stacked
    return out, errors


def _checked_weights(pipeline: Pipeline) -> dict[str, Any]:
    """musicnn's weights from the installed checkpoints, refused if they are not the ones the pipeline was fitted with."""
    from musicvae.features.extract import musicnn_weights

    cache = Path(os.environ.get("MUSICVAE_CACHE", "~/.cache/musicvae")).expanduser()
    weights = musicnn_weights(pipeline.data.audio, cache)
    for model, expected in pipeline.spec["checkpoints"].items():
        if weights[model].key != expected:
            raise PipelineError(
                f"musicnn's {model} checkpoint here (sha256 {weights[model].key[:12]}) is not the one the pipeline was fitted with ({expected[:12]})"
            )
    return weights


def _text(pipeline: Pipeline, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The text modality as training computed it: the same columns, label words scrubbed, the same embedder, the same scaler."""
    from musicvae.features.text import embed_texts, track_texts

    cfg = pipeline.data.text
    lyrics = dict(zip(frame["track_id"].astype(str), frame["lyrics"].astype(str))) if "lyrics" in frame and "track_id" in frame else None
    texts = track_texts(frame, cfg.columns, pipeline.spec["label_names"], lyrics=lyrics, use_embedded_tags="path" in frame.columns)
    embeddings = embed_texts(texts, cfg).astype(np.float32)
    present = ~texts.missing
    if pipeline.spec["inputs"]["text"]["standardised"] and present.any():
        embeddings[present] = _scaled(embeddings[present], pipeline.tensors["input.text.mean"], pipeline.tensors["input.text.scale"])
    return embeddings, present.astype(np.float32)


# ---------------------------------------------------------------------- 2. the model


def embed(pipeline: Pipeline, inputs: dict[str, np.ndarray], model: Any = None) -> tuple[np.ndarray, torch.nn.Module | None]:
    """The embedding (and the network, for IDEC's and VaDE's assignment) of the standardised inputs; ``model``: the network
    built by an earlier call, reused."""
    params = pipeline.params
    if params.model == "raw":
        return inputs[params.input], None
    if params.model == "pca":
        t = pipeline.tensors
        return ((inputs[params.input] - t["pca.mean"]) @ t["pca.components"].T).astype(np.float32), None
    from musicvae.training import encode

    model = model if model is not None else network(pipeline)
    if not inputs:
        return np.empty((0, int(pipeline.spec["embedding_dim"])), np.float32), model
    z, _ = encode(model, _model_inputs(params, inputs), next(model.parameters()).device)
    return z, model


def network(pipeline: Pipeline) -> torch.nn.Module:
    """The pipeline's network with its weights, in inference mode, on the GPU where there is one (a Ray actor's, or this process's)."""
    import torch

    from musicvae.models import build_model

    shapes = {key: np.zeros((1, *shape), np.float32) for key, shape in pipeline.spec["shapes"].items()}
    model = build_model(pipeline.params, shapes, pipeline.spec["n_clusters"])
    state = {k.removeprefix("model."): torch.from_numpy(v.copy()) for k, v in pipeline.tensors.items() if k.startswith("model.")}
    model.load_state_dict(state, strict=True)
    return model.eval().to("cuda" if torch.cuda.is_available() else "cpu")


def _model_inputs(params: TrialParams, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The batch keys of :func:`musicvae.trial.model_inputs`, from the arrays :func:`features` made."""
    batch = {"spectrogram": inputs[params.spectrogram]} if params.uses_spectrogram else {"features": inputs[params.input]}
    if params.model == "multimodal_vae":
        batch.update(text=inputs["text"], text_mask=inputs["text_mask"])
    return batch


# ---------------------------------------------------------------------- 3. what the clusterer sees


def clustering_space(pipeline: Pipeline, z: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """The embedding pooled with its metadata group (groups of the tracks given), then on N2D's UMAP (interpolated)."""
    from musicvae.dataset import metadata_groups
    from musicvae.manifold import pool_groups

    params, data = pipeline.params, pipeline.data
    if params.clusterer in ("idec", "vade"):
        return z
    if data.group_by and params.group_weight > 0:
        pipeline.check(frame)
        z = pool_groups(z, metadata_groups(frame, data.group_by)[0], params.group_weight)
    if params.manifold == "umap":
        z = interpolate(pipeline.tensors["manifold.input"], pipeline.tensors["manifold.coords"], z)
    return z


def interpolate(fitted: np.ndarray, coords: np.ndarray, points: np.ndarray, k: int = UMAP_NEIGHBOURS) -> np.ndarray:
    """Each point's coordinates: a fitted point's own where it is one, else the inverse-distance-weighted mean of its ``k`` nearest."""
    from sklearn.neighbors import NearestNeighbors

    distance, index = NearestNeighbors(n_neighbors=min(k, len(fitted))).fit(fitted).kneighbors(points)
    exact = distance[:, 0] == 0
    weights = 1.0 / np.maximum(distance, 1e-12)
    out = (weights[:, :, None] * coords[index]).sum(axis=1) / weights.sum(axis=1, keepdims=True)
    out[exact] = coords[index[exact, 0]]
    return out.astype(np.float32)


# ---------------------------------------------------------------------- 4. the clusterer


def assign(pipeline: Pipeline, space: np.ndarray, z: np.ndarray, model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's cluster (-1: noise), its distance and its confidence (NaN where the clusterer has none); see the module docstring
    of :mod:`musicvae.pipeline` for each clusterer's rule."""
    kind = pipeline.params.clusterer
    t = {k.removeprefix("clusterer."): v for k, v in pipeline.tensors.items() if k.startswith("clusterer.")}
    nan = np.full(len(space), np.nan)
    if kind == "kmeans":
        distances = np.linalg.norm(space[:, None, :].astype(np.float64) - t["centres"][None].astype(np.float64), axis=2)
        return _kmeans(t["centres"]).predict(space), distances.min(axis=1), nan
    if kind == "gmm":
        probabilities = _gmm(t).predict_proba(space)
        return probabilities.argmax(axis=1), nan, probabilities.max(axis=1)
    if kind == "agglomerative":
        distance, index = _nearest(t["space"], space)
        return t["labels"][index], distance, nan
    if kind == "dbscan":
        return _dbscan(t, space, float(pipeline.spec["settings"]["eps"]))
    if kind == "hdbscan":
        distance, index = _nearest(t["space"], space)
        inside = distance <= t["core_distance"][index]
        return np.where(inside, t["labels"][index], NOISE), distance, nan
    return _soft(kind, z, t, model)


def _nearest(fitted: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.neighbors import NearestNeighbors

    distance, index = NearestNeighbors(n_neighbors=1).fit(fitted).kneighbors(points)
    return distance[:, 0], index[:, 0]


def _kmeans(centres: np.ndarray) -> Any:
    """A fitted K-Means whose centres are ``centres``: one Lloyd step from them on themselves leaves each where it is."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=len(centres), init=centres, n_init=1, max_iter=1).fit(centres)


def _gmm(t: dict[str, np.ndarray]) -> Any:
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(n_components=len(t["weights"]), covariance_type="full")
    gmm.weights_, gmm.means_, gmm.covariances_, gmm.precisions_cholesky_ = t["weights"], t["means"], t["covariances"], t["precisions_cholesky"]
    gmm.converged_, gmm.n_features_in_ = True, t["means"].shape[1]
    return gmm


def _dbscan(t: dict[str, np.ndarray], space: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise unless a core track lies within eps; then the cluster of the nearest clustered track within eps."""
    from sklearn.neighbors import NearestNeighbors

    core = t["core"].astype(bool)
    labels = np.full(len(space), NOISE)
    distance = np.full(len(space), np.nan)
    if core.any():
        near_core = NearestNeighbors(n_neighbors=1).fit(t["space"][core]).kneighbors(space)[0][:, 0] <= eps
        clustered = t["labels"] != NOISE
        d, index = _nearest(t["space"][clustered], space)
        chosen = near_core & (d <= eps)
        labels[chosen] = t["labels"][clustered][index[chosen]]
        distance[chosen] = d[chosen]
    return labels, distance, np.full(len(space), np.nan)


def _soft(kind: str, z: np.ndarray, t: dict[str, np.ndarray], model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IDEC: the Student-t assignment to the refined centres; VaDE: q(c|x). The assignment's probability is the confidence."""
    import torch

    from musicvae.idec import soft_assignment

    with torch.no_grad():
        if kind == "idec":
            q = soft_assignment(torch.as_tensor(z), torch.as_tensor(t["centres"]))
        else:
            q = model.responsibilities(torch.as_tensor(z, device=next(model.parameters()).device))
    q = q.cpu().numpy()
    return q.argmax(axis=1), np.full(len(z), np.nan), q.max(axis=1)
