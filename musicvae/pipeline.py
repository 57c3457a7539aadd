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

So on the tracks it was fitted on, :meth:`Pipeline.predict` gives the trial's
own clusters. A pipeline is saved as data, never as code: ``pipeline.json``
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
from typing import Any

import numpy as np
import pandas as pd

from musicvae.config import DataConfig, FMAFeaturesSource, TableSource
from musicvae.params import TrialParams

FORMAT = 1
SPEC_FILE = "pipeline.json"
TENSORS_FILE = "tensors.safetensors"
ARTIFACT = "pipeline"  # where a trial logs its pipeline in its MLflow run: runs:/<run id>/pipeline
NOISE = -1


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
        from musicvae import pipeline_stages as stages

        self.check(frame)
        frame = frame.reset_index(drop=True)
        track_ids = frame["track_id"].astype(str).tolist() if "track_id" in frame else [str(i) for i in range(len(frame))]
        inputs, errors = stages.features(self, frame)
        ok = np.flatnonzero(np.array(errors) == "")
        n_dim = int(self.spec["embedding_dim"])
        embedding = np.full((len(frame), n_dim), np.nan, np.float32)
        clusters = np.full(len(frame), NOISE, np.int64)
        distance, confidence = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
        if len(ok):
            kept = {name: values[ok] for name, values in inputs.items()}
            z, model = stages.embed(self, kept)
            embedding[ok] = z
            space = stages.clustering_space(self, z, frame.iloc[ok])
            clusters[ok], distance[ok], confidence[ok] = stages.assign(self, space, z, model)
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
    if flavor.get("loader_module") != __name__ or "python_model" in flavor or pickled:
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
