"""The sweep's results as tables: one row per trial, and one row per method over its seeds.

A *method* is a configuration without its seed ("vae (β=0.5) + kmeans").
Trials that differ only in the seed are repeats of one method; the method
table shows their mean ± std, and selection uses the mean, so a lucky seed
cannot win. Selection is label-free by default; the oracle (best mean ARI,
which uses labels) is printed beside it to show what label-free selection
costs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from musicvae import metric_registry as registry
from musicvae.config.params import TrialParams, applies
from musicvae.evaluation.metrics import DEGENERATE_SHARE
from musicvae.metric_registry import QUALITY, REGISTRY

SHOWN_PARAMS = ("model", "latent_dim", "beta", "clusterer", "seed")  # always shown; others when they vary
METRICS = tuple(name for name, spec in REGISTRY.items() if spec.kind != "time")  # a trial's scores, in the registry's order
DIAGNOSTICS = ("noise_fraction", "largest_cluster", "seconds")  # the report's context columns beside QUALITY: no bold best
SYMBOLS = {"beta": "β", "group_weight": "pooled", "manifold_dim": "umap_dim", "manifold_neighbors": "umap_k", "n_clusters": "k"}


class TrialStatus(StrEnum):
    """How a trial ended, as the leaderboard and the report count it (equal to its string, so tables compare with either)."""

    OK = "OK"
    FAILED = "FAILED"  # the trial raised or its loss went NaN
    STOPPED = "STOPPED"  # early-stopped by the scheduler: no clustering ran


@dataclass(frozen=True)
class TrialRecord:
    """One finished, failed or stopped trial, wherever it was read from (Tune results or MLflow runs).

    ``status`` is OK, FAILED (the trial raised or its loss went NaN; ``error``
    says why) or STOPPED (early-stopped by the scheduler: no clustering ran).
    """

    name: str
    status: TrialStatus
    config: dict[str, Any]
    metrics: dict[str, Any]
    error: str = ""


def record_from_result(result: Any) -> TrialRecord:
    """A Tune result as a record: a trial that raised, or that reported ``failed``, is FAILED; one stopped early, STOPPED."""
    metrics = dict(result.metrics or {})
    name = Path(result.path).name if result.path else "?"
    if result.error:
        return TrialRecord(name, TrialStatus.FAILED, dict(result.config or {}), metrics, str(result.error).strip().splitlines()[-1][:300])
    if metrics.get("failed"):
        return TrialRecord(name, TrialStatus.FAILED, dict(result.config or {}), metrics, str(metrics.get("error", ""))[:300])
    if "trial_seconds" not in metrics:  # only the final result has it: the scheduler stopped the trial before clustering
        return TrialRecord(name, TrialStatus.STOPPED, dict(result.config or {}), metrics, f"stopped early at epoch {metrics.get('epoch', '?')}")
    return TrialRecord(name, TrialStatus.OK, dict(result.config or {}), metrics)


STATUS_ORDER = {TrialStatus.OK: 0, TrialStatus.STOPPED: 1, TrialStatus.FAILED: 2}


def trial_table(records: list[TrialRecord], metric: str, mode: str) -> pd.DataFrame:
    """One row per trial, best first by the objective; stopped and failed trials last."""
    defaults = TrialParams()
    params = [p for p in TrialParams.model_fields if p in SHOWN_PARAMS or any(p in r.config for r in records)]
    rows = []
    for record in records:
        config, metrics = record.config, record.metrics
        row = {"trial": record.name, "status": record.status}
        row.update({p: config.get(p, getattr(defaults, p) if applies(p, config) else "") for p in params})
        ok = record.status == TrialStatus.OK
        row.update({m: float(metrics[m]) if ok and m in metrics else math.nan for m in METRICS})
        row["seconds"] = metrics.get("trial_seconds", metrics.get("time_total_s", math.nan))
        row["error"] = record.error
        rows.append(row)
    table = pd.DataFrame(rows, columns=["trial", "status", *params, *METRICS, "seconds", "error"])
    table.insert(2, "method", method_names(table, params))
    table = table.assign(_order=table["status"].map(STATUS_ORDER))
    table = table.sort_values(["_order", metric], ascending=[True, mode == "min"], na_position="last", kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)


def leaderboard(results: Any, metric: str, mode: str) -> pd.DataFrame:
    """The trial table of a Tune ResultGrid (or any iterable of results)."""
    return trial_table([record_from_result(r) for r in results], metric, mode)


def method_trial(table: pd.DataFrame, method: str) -> pd.Series:
    """The method's finished trial with the lowest seed: the one its figures and the report's explorer show."""
    ok = table[(table["method"] == method) & (table["status"] == TrialStatus.OK)]
    return ok.sort_values("seed", kind="stable").iloc[0]


def setting(name: str, value: Any, digits: int = 3) -> str:
    """'β=0.5', 'latent_dim=16': one parameter as method names show it (floats to ``digits`` significant digits)."""
    symbol = SYMBOLS.get(name, name)
    return f"{symbol}={value:.{digits}g}" if isinstance(value, float) else f"{symbol}={value}"


def method_name(row: pd.Series, varying: list[str], digits: int = 3) -> str:
    """'vae (β=0.5) + kmeans': the row's model, its settings among ``varying`` (blank ones left out), its clusterer."""
    settings = [setting(p, row[p], digits) for p in varying if row[p] != ""]
    return f"{row['model']}{' (' + ', '.join(settings) + ')' if settings else ''} + {row['clusterer']}"


def method_names(table: pd.DataFrame, params: list[str]) -> list[str]:
    """Every row's method name: one per configuration (its parameters but the seed), showing the settings that vary.

    A method is a configuration, not a name: two sampled β that print alike
    at three digits (1.0012 and 1.0034) are two methods, so their names get
    the digits that tell them apart.
    """
    varying = [p for p in params if p not in ("model", "clusterer", "seed") and table.loc[table[p] != "", p].astype(str).nunique() > 1]
    configs = [json.dumps({p: row[p] for p in params if p != "seed"}, sort_keys=True, default=str) for _, row in table.iterrows()]
    for digits in (3, 6, 17):  # 17 significant digits print every float64 apart
        names = [method_name(row, varying, digits) for _, row in table.iterrows()]
        if len(set(zip(configs, names))) == len(set(names)):  # each name one configuration
            break
    return names


def method_table(table: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """One row per method: finished seeds, then mean and std of every metric and of the trial time; best mean first."""
    ok = table[table["status"] == TrialStatus.OK]
    if ok.empty:
        return pd.DataFrame(columns=["method", "n"])
    columns = [m for m in (*METRICS, "seconds") if ok[m].notna().any()]
    grouped = ok.groupby("method", sort=False)[columns]
    # A metric undefined for one seed (a single cluster found) is undefined for the method: averaging the
    # other seeds would report one lucky seed as the method's mean. The std of a single seed is NaN too.
    means = grouped.agg(lambda values: values.mean(skipna=False))
    stds = grouped.agg(lambda values: values.std(ddof=1, skipna=False))
    summary = pd.concat({"mean": means, "std": stds}, axis=1)
    summary.columns = [f"{m}_{stat}" for stat, m in summary.columns]
    summary.insert(0, "n", grouped.size())
    summary = summary.reset_index()
    return summary.sort_values(f"{metric}_mean", ascending=mode == "min", na_position="last", kind="stable").reset_index(drop=True)


def degenerate_rows(methods: pd.DataFrame) -> set[int]:
    """Methods that put DEGENERATE_SHARE of the tracks in one cluster: internal metrics reward them, selection skips them."""
    if "largest_cluster_mean" not in methods:
        return set()
    return set(methods.index[methods["largest_cluster_mean"] >= DEGENERATE_SHARE])


def best_rows(methods: pd.DataFrame, column: str) -> set[int]:
    """Rows holding the best mean of a quality column, degenerate methods aside, as in selection.

    Means are compared as printed, so two cells that read the same are both
    bold. None when fewer than two methods have a value: a lone value is not "best".
    """
    values = methods[f"{column}_mean"].drop(index=list(degenerate_rows(methods))).dropna()
    if len(values) < 2:
        return set()
    best = values.min() if registry.lower_is_better(column) else values.max()
    places = registry.digits(best, column)
    return set(values.index[values.round(places) == round(best, places)])


def without_idle_noise(columns: list[str], methods: pd.DataFrame) -> list[str]:
    """``columns`` less noise_fraction where no method made any noise (no density clusterer: a column of zeros says nothing)."""
    if "noise_fraction" in columns and not methods["noise_fraction_mean"].fillna(0).any():
        return [c for c in columns if c != "noise_fraction"]
    return columns


def report_columns(methods: pd.DataFrame) -> list[str]:
    """The quality metrics and diagnostics the sweep has; noise only where a density clusterer made some."""
    return without_idle_noise([c for c in (*QUALITY, *DIAGNOSTICS) if f"{c}_mean" in methods and methods[f"{c}_mean"].notna().any()], methods)


@dataclass(frozen=True)
class MethodsView:
    """What every rendering of the method table shows: the columns, their headers, the bold cells, the degenerate rows."""

    columns: list[str]
    headers: list[str]
    best: dict[str, set[int]]  # quality column -> rows whose mean is the best
    degenerate: set[int]


def methods_view(methods: pd.DataFrame, lower_mark: str) -> MethodsView:
    """The report's view of the method table; ``lower_mark`` follows the header of a quality metric where lower is better."""
    columns = report_columns(methods)
    headers = [registry.label(c) + (lower_mark if c in QUALITY and registry.lower_is_better(c) else "") for c in columns]
    return MethodsView(columns, headers, {c: best_rows(methods, c) for c in columns if c in QUALITY}, degenerate_rows(methods))


def status_counts(table: pd.DataFrame) -> dict[str, int]:
    return {status: int((table["status"] == status).sum()) for status in TrialStatus}


def pareto_front(methods: pd.DataFrame, metrics: list[str], modes: list[str]) -> pd.DataFrame:
    """The methods no other method beats on every objective (by their means over seeds).

    A method with an undefined objective is not on the front. Rows keep the
    method table's order (best primary objective first).
    """
    columns = [f"{m}_mean" for m in metrics]
    if methods.empty or not set(columns) <= set(methods.columns):
        return methods.iloc[0:0]
    defined = methods.dropna(subset=columns)
    # Turn every objective into "larger is better", then keep the non-dominated rows.
    scores = defined[columns].to_numpy(float) * [1.0 if mode == "max" else -1.0 for mode in modes]
    on_front = [not any((other >= row).all() and (other > row).any() for j, other in enumerate(scores) if j != i) for i, row in enumerate(scores)]
    return defined[on_front].reset_index(drop=True)
