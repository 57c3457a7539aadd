"""A finished trial's pipeline, fitted and applicable to tracks it has never seen.

features -> standardised inputs -> model -> embedding -> clustering space -> cluster

Everything a trial fitted is kept: which features and how they were extracted
(MFCC settings, musicnn's checkpoints by hash), the columns kept and the scaler
of each input, the text embedding's settings and scaler, the model (PCA's
components or the network's weights), the metadata pooling and N2D's UMAP
stage, and the clusterer, made able to assign new points:

* K-Means: the nearest centroid (its distance is reported);
* Gaussian mixture: the most probable component (its posterior is the confidence);
* agglomerative: the cluster of the nearest track it was fitted on (a Ward or
  average tree has no centroids that reproduce its cut, the nearest member does);
* DBSCAN: noise unless a core track lies within ``eps``; then the cluster of the
  nearest clustered track within ``eps``;
* HDBSCAN: the cluster of the nearest fitted track if the new one lies within
  that track's core distance (its ``min_samples``-th neighbour), else noise;
* IDEC: the refined encoder, then the most similar centre (Student-t soft
  assignment, the confidence); VaDE: argmax q(c|x), its probability the confidence;
* N2D's UMAP stage: a new point's coordinates are the inverse-distance-weighted
  mean of its nearest fitted points' coordinates (UMAP's own start for new
  points, without its refinement); a point it was fitted on gets its own.

Applying one is :func:`features` -> :func:`embed` -> :func:`clustering_space` ->
:func:`assign`, each the trial's own computation where one exists (the same
extraction, the same scaler, the same network), so on the tracks it was fitted
on, :meth:`Pipeline.predict` gives the trial's own clusters (fitting one from a
trial: :mod:`musicvae.serving.fitting`). A pipeline is saved as data, never as code: ``pipeline.json``
(what each stage is, with its settings) and ``tensors.safetensors`` (every
fitted number, the network's weights among them), and logged as an MLflow
``python_function`` model whose loader is this module, so loading one runs no
pickle (:func:`load_pipeline` refuses a model that would).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from musicvae.config.params import TrialParams
from musicvae.config.sections import DataConfig, FMAFeaturesSource, TableSource
from musicvae.legacy import current_name

if TYPE_CHECKING:
    import torch

FORMAT = 1
SPEC_FILE = "pipeline.json"
TENSORS_FILE = "tensors.safetensors"
ARTIFACT = "pipeline"  # where a trial logs its pipeline in its MLflow run: runs:/<run id>/pipeline
NOISE = -1
UMAP_NEIGHBOURS = 15  # fitted points a new point's UMAP coordinates are interpolated from


class PipelineError(ValueError):
    """A pipeline that cannot be loaded or applied; the message says why in one line."""


@dataclass
class Pipeline:
    """A fitted pipeline: ``spec`` says what each stage is, ``tensors`` holds what it fitted (see the module docstring)."""

    spec: dict[str, Any]
    tensors: dict[str, np.ndarray]

    # ------------------------------------------------------------------ what it takes and gives

    @property
    def params(self) -> TrialParams:
        return TrialParams(**self.spec["params"])

    @property
    def data(self) -> DataConfig:
        return DataConfig.model_validate(self.spec["data"])

    @property
    def takes_audio(self) -> bool:
        return not isinstance(self.data.source, (TableSource, FMAFeaturesSource))

    def input_columns(self) -> list[str]:
        """The columns ``predict`` reads: ``path`` for audio (the file), else the table's feature columns; metadata where used."""
        columns = ["path"] if self.takes_audio else list(self.spec["inputs"]["mfcc"]["columns"])
        return columns + [c for c in self._metadata_columns() if c not in columns]

    def check(self, frame: pd.DataFrame) -> None:
        """That ``frame`` has what ``predict`` reads: the files (audio) or every feature column, and the metadata tracks are pooled by."""
        if self.takes_audio and "path" not in frame.columns:
            raise PipelineError("the data has no 'path' column: this pipeline was fitted on audio and reads the files")
        if not self.takes_audio:
            columns = self.spec["inputs"]["mfcc"]["columns"]
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                raise PipelineError(f"the data lacks {len(missing)} of the {len(columns)} feature columns the pipeline was fitted on: {shown}")
        groups = [c for c in self.data.group_by or [] if c not in frame.columns] if self.params.group_weight > 0 else []
        if groups and self.params.clusterer not in ("idec", "vade"):
            raise PipelineError(f"the data lacks the metadata column(s) {groups} the pipeline pools tracks by (data.group_by)")

    def _metadata_columns(self) -> list[str]:
        data = self.data
        text = list(data.text.columns) if data.text is not None and self.params.model == "multimodal_vae" else []
        return text + list(data.group_by or [])

    # ------------------------------------------------------------------ applying it

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The embedding of every row of ``frame`` (rows whose audio fails are NaN)."""
        return self._apply(frame).embedding

    def predict(self, frame: pd.DataFrame, embedding: bool = False) -> pd.DataFrame:
        """``track_id``, ``cluster`` (-1: noise), ``distance`` and ``confidence`` (NaN where a clusterer has none), ``error``
        (why a row could not be assigned, else empty) per row of ``frame``; with ``embedding``, its columns ``z00``...."""
        applied = self._apply(frame)
        out = pd.DataFrame({"track_id": applied.track_ids})
        out["cluster"] = pd.array(applied.clusters, dtype="Int64")
        out["distance"], out["confidence"], out["error"] = applied.distance, applied.confidence, applied.errors
        if embedding:
            z = pd.DataFrame(applied.embedding, columns=[f"z{i:02d}" for i in range(applied.embedding.shape[1])])
            out = pd.concat([out, z], axis=1)
        return out

    def _apply(self, frame: pd.DataFrame) -> Applied:
        self.check(frame)
        frame = frame.reset_index(drop=True)
        track_ids = frame["track_id"].astype(str).tolist() if "track_id" in frame else [str(i) for i in range(len(frame))]
        inputs, errors = features(self, frame)
        ok = np.flatnonzero(np.array(errors) == "")
        n_dim = int(self.spec["embedding_dim"])
        embedding = np.full((len(frame), n_dim), np.nan, np.float32)
        clusters = np.full(len(frame), NOISE, np.int64)
        distance, confidence = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
        if len(ok):
            kept = {name: values[ok] for name, values in inputs.items()}
            z, model = embed(self, kept)
            embedding[ok] = z
            space = clustering_space(self, z, frame.iloc[ok])
            clusters[ok], distance[ok], confidence[ok] = assign(self, space, z, model)
        result = [int(c) if not e else None for c, e in zip(clusters, errors)]
        return Applied(track_ids, embedding, result, distance, confidence, errors)

    # ------------------------------------------------------------------ storage: data, never code

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SPEC_FILE).write_text(json.dumps({"format": FORMAT, **self.spec}, indent=1, sort_keys=True))
        save_file({k: np.ascontiguousarray(v) for k, v in self.tensors.items()}, str(folder / TENSORS_FILE))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Pipeline:
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / SPEC_FILE).is_file() or not (folder / TENSORS_FILE).is_file():
            raise PipelineError(f"{folder} holds no musicvae pipeline ({SPEC_FILE} and {TENSORS_FILE})")
        try:
            spec = json.loads((folder / SPEC_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise PipelineError(f"{folder / SPEC_FILE} is not valid JSON: {exc}") from None
        if spec.pop("format", None) != FORMAT:
            raise PipelineError(f"{folder / SPEC_FILE}: a pipeline of another format than {FORMAT} (written by another musicvae)")
        return cls(spec, load_file(str(folder / TENSORS_FILE)))


@dataclass(frozen=True)
class Applied:
    track_ids: list[str]
    embedding: np.ndarray
    clusters: list[int | None]
    distance: np.ndarray
    confidence: np.ndarray
    errors: list[str]


# ---------------------------------------------------------------------- MLflow: the pyfunc flavour, loaded by module


class PyfuncPipeline:
    """What ``mlflow.pyfunc.load_model`` returns the predictions of: :meth:`Pipeline.predict`, with ``params={"embedding": True}``."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.pipeline.predict(pd.DataFrame(model_input), embedding=bool((params or {}).get("embedding", False)))


def _load_pyfunc(data_path: str) -> PyfuncPipeline:
    """MLflow's entry point for a model whose ``loader_module`` is this module: the saved folder, read as data."""
    return PyfuncPipeline(Pipeline.load(data_path))


def save_mlflow_model(pipeline: Pipeline, path: str | Path, example: pd.DataFrame) -> None:
    """``path`` becomes an MLflow model: the pipeline's folder as its data, this module as its loader, the signature and an input example."""
    import tempfile
    from importlib.metadata import version

    import mlflow.pyfunc
    from mlflow.models import ModelSignature, infer_signature

    with warnings.catch_warnings():  # "integer columns cannot represent missing values": the cluster of a failed track is null on purpose
        warnings.simplefilter("ignore", UserWarning)
        inferred = infer_signature(example, pipeline.predict(example, embedding=True), params={"embedding": False})
    signature = ModelSignature(input_schema(pipeline), inferred.outputs, inferred.params)
    requirements = [f"musicvae=={version('musicvae')}"]
    with tempfile.TemporaryDirectory() as folder:
        data = pipeline.save(Path(folder) / ARTIFACT)
        mlflow.pyfunc.save_model(
            str(path), loader_module=__name__, data_path=str(data), signature=signature, input_example=example, pip_requirements=requirements
        )


def input_schema(pipeline: Pipeline) -> Any:
    """What ``predict`` reads, as MLflow's schema: the file (audio) or the feature columns; the id and the metadata optional,
    except the metadata columns tracks are pooled by."""
    from mlflow.types import ColSpec, Schema

    columns = [ColSpec("string", "track_id", required=False)]
    if pipeline.takes_audio:
        columns.append(ColSpec("string", "path"))
    else:
        columns += [ColSpec("double", c) for c in pipeline.spec["inputs"]["mfcc"]["columns"]]
    groups = pipeline.data.group_by or []
    columns += [ColSpec("string", c, required=c in groups) for c in pipeline._metadata_columns() if c != "path"]
    return Schema(columns)


def load_pipeline(uri: str) -> Pipeline:
    """The pipeline at an MLflow model URI (``models:/<sweep>@champion``, ``runs:/<run id>/pipeline``) or a local folder.

    Refuses, before anything is loaded, a model that is not a musicvae pipeline:
    one whose flavour would unpickle a Python object (``python_model`` or a
    ``cloudpickle`` file) or whose loader is another module.
    """
    import mlflow
    import yaml
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file of the model, on every load
    local = Path(uri).expanduser()
    try:
        root = local if local.exists() else Path(mlflow.artifacts.download_artifacts(uri))
    except (MlflowException, OSError) as exc:
        raise PipelineError(f"no model at {uri}: {str(exc).splitlines()[0]}") from None
    if (root / SPEC_FILE).is_file():
        return Pipeline.load(root)
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise PipelineError(f"{uri} is not an MLflow model or a musicvae pipeline (no MLmodel, no {SPEC_FILE})")
    flavor = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("python_function", {})
    pickled = [p.name for p in root.rglob("*") if p.suffix in (".pkl", ".pickle") or p.name.endswith("cloudpickle")]
    if current_name(flavor.get("loader_module") or "") != __name__ or "python_model" in flavor or pickled:
        found = flavor.get("loader_module") or ("a pickled python_model" if "python_model" in flavor or pickled else "no loader")
        raise PipelineError(f"{uri} is not a musicvae pipeline (its loader is {found}); refusing to load it, which could run its code")
    return Pipeline.load(root / flavor.get("data", ARTIFACT))


def describe(pipeline: Pipeline) -> str:
    """One line: what the pipeline does."""
    p = pipeline.params
    source = "audio files" if pipeline.takes_audio else "feature columns"
    parts = [f"{source} -> {p.input}" if p.model not in ("conv_vae",) else f"{source} -> {p.spectrogram}", p.model]
    if p.clusterer in ("kmeans", "agglomerative", "gmm", "dbscan", "hdbscan") and p.manifold == "umap":
        parts.append(f"UMAP {p.manifold_dim}")
    k = pipeline.spec.get("n_clusters")
    parts.append(p.clusterer + (f" (k = {k})" if k else ""))
    return " -> ".join(parts)


# ---------------------------------------------------------------------- applying: 1. features


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
    from musicvae.data.features.audio import PATCHES, AudioError, extract_file, feature_names, musicnn_features

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
    from musicvae.data.features.extract import musicnn_weights

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
    from musicvae.data.features.text import embed_texts, track_texts

    cfg = pipeline.data.text
    lyrics = dict(zip(frame["track_id"].astype(str), frame["lyrics"].astype(str))) if "lyrics" in frame and "track_id" in frame else None
    texts = track_texts(frame, cfg.columns, pipeline.spec["label_names"], lyrics=lyrics, use_embedded_tags="path" in frame.columns)
    embeddings = embed_texts(texts, cfg).astype(np.float32)
    present = ~texts.missing
    if pipeline.spec["inputs"]["text"]["standardised"] and present.any():
        embeddings[present] = _scaled(embeddings[present], pipeline.tensors["input.text.mean"], pipeline.tensors["input.text.scale"])
    return embeddings, present.astype(np.float32)


# ---------------------------------------------------------------------- applying: 2. the model


def embed(pipeline: Pipeline, inputs: dict[str, np.ndarray], model: Any = None) -> tuple[np.ndarray, torch.nn.Module | None]:
    """The embedding (and the network, for IDEC's and VaDE's assignment) of the standardised inputs; ``model``: the network
    built by an earlier call, reused."""
    params = pipeline.params
    if params.model == "raw":
        return inputs[params.input], None
    if params.model == "pca":
        t = pipeline.tensors
        return ((inputs[params.input] - t["pca.mean"]) @ t["pca.components"].T).astype(np.float32), None
    from musicvae.training.loop import encode

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


# ---------------------------------------------------------------------- applying: 3. what the clusterer sees


def clustering_space(pipeline: Pipeline, z: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
    """The embedding pooled with its metadata group (groups of the tracks given), then on N2D's UMAP (interpolated)."""
    from musicvae.clustering.manifold import pool_groups
    from musicvae.data.dataset import metadata_groups

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


# ---------------------------------------------------------------------- applying: 4. the clusterer


def assign(pipeline: Pipeline, space: np.ndarray, z: np.ndarray, model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's cluster (-1: noise), its distance and its confidence (NaN where the clusterer has none); see the module docstring
    of :mod:`musicvae.serving.pipeline` for each clusterer's rule."""
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

    from musicvae.clustering.idec import soft_assignment

    with torch.no_grad():
        if kind == "idec":
            q = soft_assignment(torch.as_tensor(z), torch.as_tensor(t["centres"]))
        else:
            q = model.responsibilities(torch.as_tensor(z, device=next(model.parameters()).device))
    q = q.cpu().numpy()
    return q.argmax(axis=1), np.full(len(z), np.nan), q.max(axis=1)
