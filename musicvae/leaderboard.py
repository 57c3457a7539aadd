"""The sweep's results as tables: one row per trial, and one row per method over its seeds.

A *method* is a configuration without its seed ("vae (β=0.5) + kmeans").
Trials that differ only in the seed are repeats of one method; the method
table shows their mean ± std, and selection uses the mean, so a lucky seed
cannot win. Selection is label-free by default; the oracle (best mean ARI,
which uses labels) is printed beside it to show what label-free selection
costs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musicvae.metric_registry import LABEL_METRICS, REGISTRY, format_value
from musicvae.metrics import DEGENERATE_SHARE
from musicvae.params import TrialParams, applies

SHOWN_PARAMS = ("model", "latent_dim", "beta", "clusterer", "seed")  # always shown; others when they vary
METRICS = tuple(name for name, spec in REGISTRY.items() if spec.kind != "time")  # a trial's scores, in the registry's order
SYMBOLS = {"beta": "β", "group_weight": "pooled", "manifold_dim": "umap_dim", "manifold_neighbors": "umap_k"}


@dataclass(frozen=True)
class TrialRecord:
    """One finished, failed or stopped trial, wherever it was read from (Tune results or MLflow runs).

    ``status`` is OK, FAILED (the trial raised or its loss went NaN; ``error``
    says why) or STOPPED (early-stopped by the scheduler: no clustering ran).
    """

    name: str
    status: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    error: str = ""


def record_from_result(result: Any) -> TrialRecord:
    """A Tune result as a record: a trial that raised, or that reported ``failed``, is FAILED; one stopped early, STOPPED."""
    metrics = dict(result.metrics or {})
    name = Path(result.path).name if result.path else "?"
    if result.error:
        return TrialRecord(name, "FAILED", dict(result.config or {}), metrics, str(result.error).strip().splitlines()[-1][:300])
    if metrics.get("failed"):
        return TrialRecord(name, "FAILED", dict(result.config or {}), metrics, str(metrics.get("error", ""))[:300])
    if "trial_seconds" not in metrics:  # only the final result has it: the scheduler stopped the trial before clustering
        return TrialRecord(name, "STOPPED", dict(result.config or {}), metrics, f"stopped early at epoch {metrics.get('epoch', '?')}")
    return TrialRecord(name, "OK", dict(result.config or {}), metrics)


STATUS_ORDER = {"OK": 0, "STOPPED": 1, "FAILED": 2}


def trial_table(records: list[TrialRecord], metric: str, mode: str) -> pd.DataFrame:
    """One row per trial, best first by the objective; stopped and failed trials last."""
    defaults = TrialParams()
    params = [p for p in TrialParams.model_fields if p in SHOWN_PARAMS or any(p in r.config for r in records)]
    rows = []
    for record in records:
        config, metrics = record.config, record.metrics
        row = {"trial": record.name, "status": record.status}
        row.update({p: config.get(p, getattr(defaults, p) if applies(p, config) else "") for p in params})
        ok = record.status == "OK"
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


def setting(name: str, value: Any) -> str:
    """'β=0.5', 'latent_dim=16': one parameter as method names show it."""
    symbol = SYMBOLS.get(name, name)
    return f"{symbol}={value:.3g}" if isinstance(value, float) else f"{symbol}={value}"


def method_names(table: pd.DataFrame, params: list[str]) -> list[str]:
    """'vae (β=0.5) + kmeans': the model, the settings that vary across the sweep (seed aside), the clusterer."""
    varying = [p for p in params if p not in ("model", "clusterer", "seed") and table.loc[table[p] != "", p].astype(str).nunique() > 1]
    names = []
    for _, row in table.iterrows():
        settings = [setting(p, row[p]) for p in varying if row[p] != ""]
        names.append(f"{row['model']}{' (' + ', '.join(settings) + ')' if settings else ''} + {row['clusterer']}")
    return names


def method_table(table: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """One row per method: finished seeds, then mean and std of every metric and of the trial time; best mean first."""
    ok = table[table["status"] == "OK"]
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


def format_methods(methods: pd.DataFrame) -> str:
    """The method table as text: 'mean ± std' per metric."""
    if methods.empty:
        return "(no finished trial)"
    shown = methods[["method", "n"]].copy()
    for m in (*METRICS, "seconds"):
        if f"{m}_mean" in methods:
            shown[m] = [format_value(a, b, m) for a, b in zip(methods[f"{m}_mean"], methods[f"{m}_std"])]
    return shown.to_string(index=False)


def format_leaderboard(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["method"] + [c for c in ("error",) if not table[c].astype(bool).any()])
    shown = shown.drop(columns=[c for c in (*LABEL_METRICS, "val_loss", "noise_fraction") if c in shown and shown[c].isna().all()])
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")


def selection_summary(table: pd.DataFrame, metric: str, mode: str = "max") -> str:
    """The label-free winner (best mean objective over seeds) next to the oracle (best mean ARI).

    Methods whose clusterings are degenerate (on average DEGENERATE_SHARE of
    the tracks in one cluster) cannot win: internal metrics reward them.
    """
    methods = method_table(table, metric, mode)
    if methods.empty:
        return "No trial finished."
    degenerate = methods["largest_cluster_mean"] >= DEGENERATE_SHARE if "largest_cluster_mean" in methods else pd.Series(False, index=methods.index)
    candidates = methods[~degenerate & methods[f"{metric}_mean"].notna()]
    if candidates.empty:
        return f"No method has a defined, non-degenerate {metric}: nothing to select."
    winner = candidates.iloc[0]
    lines = [f"Selected by {metric} (mean over {int(winner['n'])} seed(s)): {winner['method']}"]
    if "ari_mean" in methods and methods["ari_mean"].notna().any():
        oracle = methods.loc[methods["ari_mean"].idxmax()]
        lines[0] += f": ARI {winner['ari_mean']:.4f}, NMI {winner['nmi_mean']:.4f}"
        lines.append(f"Oracle (best mean ARI, uses labels): {oracle['method']}: ARI {oracle['ari_mean']:.4f}, NMI {oracle['nmi_mean']:.4f}")
    skipped = methods.loc[degenerate & (methods.index < winner.name), "method"].tolist()
    if skipped:
        lines.append(f"Not selectable, {DEGENERATE_SHARE:.0%}+ of the tracks in one cluster: {', '.join(skipped)}")
    return "\n".join(lines)


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
