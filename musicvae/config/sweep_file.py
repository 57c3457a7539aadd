"""The sweep file as a whole: :class:`SweepConfig`, whose checks tie the sections together, and loading it.

Every section's schema is in :mod:`musicvae.config.sections`. :func:`load_sweep` builds
a SweepConfig from YAML and turns pydantic's errors into messages that name
the offending key (``space.model: ...``), so a typo never reaches Ray.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from musicvae.config.params import NEURAL_MODELS, ParamSpec, Range, StrictModel, _check_param, applies, choices, describe_condition, grid_points
from musicvae.config.sections import (
    DataConfig,
    FMAFeaturesSource,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SelectionConfig,
    TableSource,
    TrackingConfig,
    TrialsConfig,
)


class SweepFileError(ValueError):
    """A sweep file that cannot be used; the message names the key and the problem."""


# The whole sweep file: every section, and the checks that need two of them (no docstring: it would enter the JSON schema).
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
    def _inputs_are_extracted(self) -> SweepConfig:
        """Every vector ``space.input`` names must be extracted: musicnn's need audio and 'musicnn' in data.audio.features."""
        wanted = [name for name in choices(self.space, "input") if name != "mfcc"]
        if wanted and isinstance(self.data.source, (TableSource, FMAFeaturesSource)):
            raise ValueError(f"space.input: {wanted} need audio; data.source kind '{self.data.source.kind}' holds precomputed features")
        missing = [name for name in wanted if name not in self.data.audio.inputs]
        if missing:
            models = [name.removeprefix("musicnn_").upper() for name in missing]
            raise ValueError(f"space.input: {missing} not extracted; add musicnn to data.audio.features and {models} to data.audio.musicnn.models")
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
