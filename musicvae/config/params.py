"""One trial's parameters (:class:`TrialParams`) and the rules of a search space over them.

Which parameters apply to which trial (``PARAM_CONDITIONS``: β only for
variational models, eps only for DBSCAN), how a range is sampled
(:func:`param_kind`), and every configuration of an all-choice space
(:func:`grid_points`). No Ray and no Optuna: the searcher (musicvae.tune.search),
the sweep file's checks (musicvae.config.sweep_file) and the reports read these rules.
"""

from __future__ import annotations

import json
import math
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class StrictModel(BaseModel):
    """Unknown keys are errors: a misspelt option must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ModelName = Literal["raw", "pca", "ae", "vae", "conv_vae", "multimodal_vae", "vade"]
InputName = Literal["mfcc", "musicnn_msd", "musicnn_mtt"]  # data.audio.inputs: 'mfcc', then musicnn_<model> per musicnn model extracted
ClustererName = Literal["kmeans", "agglomerative", "gmm", "dbscan", "hdbscan", "idec", "vade"]
NEURAL_MODELS = ("ae", "vae", "conv_vae", "multimodal_vae", "vade")  # trained by gradient descent
VARIATIONAL_MODELS = ("vae", "conv_vae", "multimodal_vae", "vade")  # have a KL term, so a β
K_CLUSTERERS = ("kmeans", "agglomerative", "gmm", "idec", "vade")  # the ones told how many clusters to make
# Cluster the space they are given; idec refines the model's encoder and vade reads VaDE's own q(c|x) instead.
SPACE_CLUSTERERS = ("kmeans", "agglomerative", "gmm", "dbscan", "hdbscan")
# What a trial does with a trained embedding, not how the model is trained: trials that differ only in these
# share one trained model (musicvae.training.trained_models). VaDE's mixture size is a training input there, not one of these.
CLUSTERING_PARAMS = frozenset(
    {"clusterer", "n_clusters", "linkage", "eps", "min_samples", "manifold", "manifold_dim", "manifold_neighbors", "manifold_min_dist", "group_weight"}
    | {"idec_gamma", "idec_epochs", "idec_lr"}
)


class TrialParams(StrictModel):
    """One trial's configuration: what the search space samples, with the study's defaults.

    ``raw`` (standardised features) and ``pca`` are the baselines; ``ae`` is a
    deterministic autoencoder (β = 0, no sampling); ``vae`` the MLP VAE on the
    MFCC vector; ``conv_vae`` the convolutional VAE on a spectrogram;
    ``multimodal_vae`` fuses audio and text embeddings in one latent. Every
    variational model takes a β (β-VAE) and an optional linear KL warm-up.
    """

    model: ModelName = "vae"
    input: InputName = Field("mfcc", description="the vector a model takes: mfcc (MFCC statistics, or a table's feature columns) or a musicnn model's features")
    latent_dim: int = Field(32, ge=2, le=1024)
    beta: float = Field(1.0, ge=0.0, le=1000.0)
    kl_warmup_epochs: int = Field(0, ge=0, description="β grows linearly from 0 over this many epochs (0 = off)")
    free_bits: float = Field(0.0, ge=0.0, le=10.0, description="nats of KL per latent dimension that cost nothing (0 = off): against posterior collapse")
    hidden_dim: int = Field(128, ge=4, le=8192)
    channels: int = Field(32, ge=4, le=512, description="conv encoder: channels of the first layer (doubled per layer)")
    spectrogram: Literal["mfcc_spectrogram", "logmel"] = "mfcc_spectrogram"
    audio_encoder: Literal["mlp", "cnn"] = Field("mlp", description="multimodal VAE and VaDE: MLP on the MFCC vector or CNN on the spectrogram")
    vade_pretrain_epochs: int = Field(20, ge=1, le=10000, description="VaDE: the first epochs train the reconstruction alone, then a GMM sets the prior")
    audio_weight: float = Field(1.0, gt=0.0, le=1000.0)
    text_weight: float = Field(1.0, ge=0.0, le=1000.0)
    epochs: int = Field(50, ge=1, le=10000)
    lr: float = Field(1e-3, gt=0.0, le=1.0)
    batch_size: int = Field(64, ge=1)
    val_fraction: float = Field(0.1, ge=0.0, lt=0.9)
    clusterer: ClustererName = "kmeans"
    n_clusters: int | None = Field(None, ge=2, description="k; a sweep searches it over default_k_range when its space does not set it")
    linkage: Literal["ward", "complete", "average", "single"] = "ward"
    eps: float | None = Field(None, gt=0, description="DBSCAN radius; default: the knee of the k-distance curve")
    min_samples: int = Field(5, ge=1, le=10000)
    manifold: Literal["none", "umap"] = Field("none", description="N2D: cluster a UMAP of the embedding instead of the embedding")
    manifold_dim: int = Field(10, ge=2, le=256)
    manifold_neighbors: int = Field(50, ge=2, le=1000)
    manifold_min_dist: float = Field(0.0, ge=0.0, le=1.0)
    group_weight: float = Field(0.8, ge=0.0, le=1.0, description="with data.group_by: (1 - w) x track + w x its group's mean")
    idec_gamma: float = Field(20.0, gt=0.0, le=1e4, description="IDEC: weight of the clustering loss beside the ELBO")
    idec_epochs: int = Field(50, ge=1, le=10000, description="IDEC: most refinement epochs (it stops when < 0.1 % of tracks change cluster)")
    idec_lr: float = Field(1e-3, gt=0.0, le=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _pretraining_fits(self) -> TrialParams:
        if self.model == "vade" and self.vade_pretrain_epochs >= self.epochs:
            raise ValueError(f"vade_pretrain_epochs ({self.vade_pretrain_epochs}) must be below epochs ({self.epochs}): VaDE needs epochs after pretraining")
        return self

    @property
    def uses_spectrogram(self) -> bool:
        return self.model == "conv_vae" or (self.model in ("multimodal_vae", "vade") and self.audio_encoder == "cnn")


K_GRID = (2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 20)  # the k a sweep searches by default, up to a bound that grows with the tracks


def k_bound(n_tracks: int) -> int:
    """The largest k searched by default: sqrt(n / 2), between 3 and 20 (300 tracks: 12; 800 and more: 20).

    The usual rule of thumb for the number of clusters (Mardia et al. 1979),
    capped: a listener asks for a dozen or two groups, not a hundred.
    """
    return min(20, max(3, int(math.sqrt(n_tracks / 2))))


def default_k_range(n_tracks: int) -> list[int]:
    """The k values a sweep searches when its space does not set ``n_clusters`` (a grid's list; other samplers take 2..k_bound)."""
    return [k for k in K_GRID if k <= k_bound(n_tracks)]


def trial_title(params: TrialParams) -> str:
    """A figure title that says what was run: 'vae β=4 latent 32 + kmeans, seed 1'."""
    manifold = f" → UMAP {params.manifold_dim}" if params.manifold == "umap" else ""
    return f"{_model_part(params)}{manifold} + {params.clusterer}, seed {params.seed}"


def model_title(params: TrialParams) -> str:
    """The title of a figure of the model alone (its latent analysis), the same for every clusterer: 'vae β=4 latent 32, seed 1'."""
    return f"{_model_part(params)}, seed {params.seed}"


def _model_part(params: TrialParams) -> str:
    beta = f" β={params.beta:.3g}" if params.model in VARIATIONAL_MODELS else ""
    latent = f" latent {params.latent_dim}" if params.model != "raw" else ""
    source = f" of {params.input}" if params.input != "mfcc" and not params.uses_spectrogram else ""
    return f"{params.model}{source}{beta}{latent}"


# When a parameter means something: a list of alternatives, each a set of
# (key, allowed values) that must all hold. A parameter is sampled (and
# recorded) only when its condition holds, so Optuna never learns from a value
# that had no effect (β for PCA, eps for K-Means, channels for the MLP VAE).
Condition = tuple[dict[str, tuple[str, ...]], ...]
_CNN: Condition = ({"model": ("conv_vae",)}, {"model": ("multimodal_vae", "vade"), "audio_encoder": ("cnn",)})
PARAM_CONDITIONS: dict[str, Condition] = {
    "input": ({"model": ("raw", "pca", "ae", "vae")}, {"model": ("multimodal_vae", "vade"), "audio_encoder": ("mlp",)}),  # not a CNN's spectrogram
    "latent_dim": ({"model": ("pca", *NEURAL_MODELS)},),
    **{name: ({"model": NEURAL_MODELS},) for name in ("epochs", "lr", "batch_size", "val_fraction")},
    **{name: ({"model": VARIATIONAL_MODELS},) for name in ("beta", "kl_warmup_epochs")},
    "free_bits": ({"model": ("vae", "conv_vae", "multimodal_vae")},),  # VaDE's prior is its mixture
    "hidden_dim": ({"model": ("ae", "vae", "multimodal_vae")}, {"model": ("vade",), "audio_encoder": ("mlp",)}),
    "channels": _CNN,
    "spectrogram": _CNN,
    **{name: ({"model": ("multimodal_vae",)},) for name in ("audio_weight", "text_weight")},
    "audio_encoder": ({"model": ("multimodal_vae", "vade")},),
    "vade_pretrain_epochs": ({"model": ("vade",)},),
    "n_clusters": ({"clusterer": K_CLUSTERERS},),
    "linkage": ({"clusterer": ("agglomerative",)},),
    "eps": ({"clusterer": ("dbscan",)},),
    "min_samples": ({"clusterer": ("dbscan", "hdbscan")},),
    **{name: ({"manifold": ("umap",), "clusterer": SPACE_CLUSTERERS},) for name in ("manifold_dim", "manifold_neighbors", "manifold_min_dist")},
    **{name: ({"clusterer": SPACE_CLUSTERERS},) for name in ("manifold", "group_weight")},
    **{name: ({"clusterer": ("idec",), "model": NEURAL_MODELS},) for name in ("idec_gamma", "idec_epochs", "idec_lr")},
}
CONDITION_ORDER = ("model", "clusterer", "audio_encoder", "manifold")  # drawn before the parameters that depend on them


def applies(name: str, config: dict[str, Any]) -> bool:
    """Whether parameter ``name`` has an effect in a trial with this (partial) config."""
    defaults = TrialParams.model_fields
    return any(
        all(config.get(key, defaults[key].default) in allowed for key, allowed in alternative.items()) for alternative in PARAM_CONDITIONS.get(name, ({},))
    )


def describe_condition(name: str) -> str:
    """'model in [conv_vae] or model in [multimodal_vae] and audio_encoder in [cnn]'; '' when unconditional."""
    alternatives = [" and ".join(f"{key} in [{', '.join(allowed)}]" for key, allowed in alt.items()) for alt in PARAM_CONDITIONS.get(name, ())]
    return " or ".join(alternatives)


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


def choices(space: dict[str, ParamSpec], name: str) -> list[Any]:
    """The values a categorical parameter can take in this space (its default when absent)."""
    spec = space.get(name, TrialParams.model_fields[name].default)
    return list(spec) if isinstance(spec, list) else [spec]


def ordered_names(space: dict[str, ParamSpec]) -> list[str]:
    """Space keys with the ones that others depend on first (see PARAM_CONDITIONS)."""
    return sorted(space, key=lambda n: CONDITION_ORDER.index(n) if n in CONDITION_ORDER else len(CONDITION_ORDER))


def grid_points(space: dict[str, ParamSpec]) -> list[dict[str, Any]]:
    """Every distinct configuration of an all-choice space, conditions respected.

    Each point holds the chosen values of the list-valued parameters that
    apply to it: the DBSCAN points have an ``eps`` and no ``n_clusters``, and
    K-Means is not repeated once per ``eps``.

    The seed varies slowest: every method's first seed, then every method's
    second. The trial of a model's first seed trains its other seeds beside it
    (:mod:`musicvae.training.trained_models`), and their trials come a whole round later.
    Within a seed the clustering varies slower than the model: every model's
    first clusterer, then every model's second, so the trials that train come
    first and the ones that only cluster a stored model after them (rather
    than two clusterers of one model at once, each training it).
    """
    configs: list[dict[str, Any]] = [{}]
    for name in sorted(ordered_names(space), key=lambda name: name != "seed"):  # a stable sort: the seed first, the rest in order
        spec = space[name]
        grown = []
        for config in configs:
            if not applies(name, config):
                grown.append(config)
            elif isinstance(spec, list):
                grown += [{**config, name: value} for value in dict.fromkeys(spec)]  # duplicates once
            else:
                grown.append({**config, name: spec})
        configs = grown
    points = [{k: v for k, v in c.items() if isinstance(space[k], list)} for c in configs]
    seeds: dict[Any, int] = {}
    clusterings: dict[str, int] = {}

    def order(point: dict[str, Any]) -> tuple[int, int]:
        clustering = json.dumps({k: v for k, v in point.items() if k in CLUSTERING_PARAMS}, sort_keys=True, default=str)
        return seeds.setdefault(point.get("seed"), len(seeds)), clusterings.setdefault(clustering, len(clusterings))

    return sorted(points, key=order)  # stable: the rest keeps the order built above


def describe_space(space: dict[str, ParamSpec]) -> list[str]:
    """The plan's lines for the search space: each parameter's kind, range or choices, and when it applies."""
    width = max(map(len, space), default=0) + 2
    lines = []
    for name, spec in space.items():
        if isinstance(spec, Range):
            kind = param_kind(name)
            text = f"{kind}{' log' if spec.log else ''} [{spec.low:g}, {spec.high:g}]" + (f" step {spec.step:g}" if spec.step else "")
        elif isinstance(spec, list):
            text = f"choice {spec}"
        else:
            text = f"fixed {spec}"
        condition = describe_condition(name)
        scope = f"  (only when {condition})" if condition else ""
        lines.append(f"  {name:<{width}}{text}{scope}")
    return lines
