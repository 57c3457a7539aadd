"""Every metric musicvae reports, in one place: which way is better, its label, whether it uses labels, its kind, how it prints.

The searcher's modes (``search.metric``), the leaderboard, the report's bold
bests, the heatmap's colours and the HTML tables all read this table, so a
metric cannot be "lower is better" in one of them and not in another.

Kinds:

* ``internal``: the clustering scored in the trial's own embedding (not comparable across trials);
* ``input``: the clustering scored in the standardised input features, on one shared row sample (comparable);
* ``stability``: agreement of the clusterings of two row subsamples;
* ``external``: against the labels, for evaluation only;
* ``loss``, ``diagnostic`` (noise, the largest cluster's share) and ``time``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Mode = Literal["max", "min"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    mode: Mode
    label: str
    kind: Literal["internal", "input", "stability", "external", "loss", "diagnostic", "time"]
    objective: bool = True  # may be a search objective
    large: bool = False  # printed with one decimal (values in the hundreds and more)

    @property
    def uses_labels(self) -> bool:
        return self.kind == "external"

    @property
    def lower_is_better(self) -> bool:
        return self.mode == "min"


REGISTRY: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("silhouette", "max", "silhouette", "internal"),
        MetricSpec("calinski_harabasz", "max", "Calinski-Harabasz", "internal", large=True),
        MetricSpec("davies_bouldin", "min", "Davies-Bouldin", "internal"),
        MetricSpec("input_silhouette", "max", "input silhouette", "input"),
        MetricSpec("input_calinski_harabasz", "max", "input Calinski-Harabasz", "input", large=True),
        MetricSpec("resample_stability", "max", "resample stability", "stability"),
        MetricSpec("ari", "max", "ARI", "external"),
        MetricSpec("nmi", "max", "NMI", "external"),
        MetricSpec("purity", "max", "purity", "external"),
        MetricSpec("val_loss", "min", "validation loss", "loss"),
        MetricSpec("noise_fraction", "min", "noise fraction", "diagnostic", objective=False),
        MetricSpec("largest_cluster", "min", "largest cluster", "diagnostic", objective=False),
        MetricSpec("seconds", "min", "trial seconds", "time", objective=False, large=True),
    )
}


def of_kind(*kinds: str) -> tuple[str, ...]:
    """The metrics of these kinds, in the registry's order."""
    return tuple(name for name, spec in REGISTRY.items() if spec.kind in kinds)


OBJECTIVE_MODES: dict[str, Mode] = {name: spec.mode for name, spec in REGISTRY.items() if spec.objective}
LABEL_METRICS = tuple(name for name, spec in REGISTRY.items() if spec.uses_labels)
QUALITY = of_kind("internal", "external")  # the study's table: ranked, a bold best each


def spec(name: str) -> MetricSpec:
    """The metric's entry; a name not in the registry is a higher-is-better score, except timings (``*_seconds``)."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.endswith("_seconds"):
        return MetricSpec(name, "min", name.replace("_", " "), "time", objective=False, large=True)
    return MetricSpec(name, "max", name, "internal", objective=False)


def lower_is_better(name: str) -> bool:
    return spec(name).lower_is_better


def label(name: str) -> str:
    return spec(name).label


def digits(mean: float, name: str = "", compact: bool = False) -> int:
    """Decimal places a value prints with: fixed per metric where its scale is known, so a column's numbers line up."""
    large = spec(name).large or abs(mean) >= 100
    return (0 if large else 3) if compact else (1 if large else 4)


def format_value(mean: float, std: float | None = None, name: str = "", compact: bool = False) -> str:
    """'0.4000 ± 0.0100' (one decimal for large metrics and values ≥ 100); '–' when undefined; compact: '0.400±0.010' for chart cells."""
    if mean is None or math.isnan(mean):
        return "–"
    if math.isinf(mean):
        return "∞" if mean > 0 else "-∞"
    places = digits(mean, name, compact)
    text = f"{mean:.{places}f}"
    if std is not None and math.isfinite(std):
        text += ("±" if compact else " ± ") + f"{std:.{places}f}"
    return text
