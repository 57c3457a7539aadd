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
from pathlib import Path
from typing import Any

import pandas as pd

from musicvae.config import TrialParams, applies
from musicvae.metrics import EXTERNAL, INTERNAL

SHOWN_PARAMS = ("model", "latent_dim", "beta", "clusterer", "seed")  # always shown; others when they vary
METRICS = (*INTERNAL, *EXTERNAL, "val_loss", "noise_fraction", "largest_cluster")
DEGENERATE_SHARE = 0.9  # a clustering with this share of the tracks in one cluster is not a grouping of the collection
SYMBOLS = {"beta": "β"}


def leaderboard(results: Any, metric: str, mode: str) -> pd.DataFrame:
    """One row per trial (Tune results), best first by the objective; failed trials last."""
    defaults = TrialParams()
    configs = [dict(r.config or {}) for r in results]
    params = [p for p in TrialParams.model_fields if p in SHOWN_PARAMS or any(p in c for c in configs)]
    rows = []
    for result, config in zip(results, configs):
        metrics = result.metrics or {}
        row = {"trial": Path(result.path).name if result.path else "?", "status": "FAILED" if result.error else "OK"}
        row.update({p: config.get(p, getattr(defaults, p) if applies(p, config) else "") for p in params})
        row.update({m: metrics.get(m, math.nan) for m in METRICS})
        row["seconds"] = metrics.get("trial_seconds", metrics.get("time_total_s", math.nan))
        row["error"] = str(result.error).strip().splitlines()[-1][:120] if result.error else ""
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(2, "method", method_names(table, params))
    table = table.sort_values(["status", metric], ascending=[False, mode == "min"], na_position="last", kind="stable")
    return table.reset_index(drop=True)


def method_names(table: pd.DataFrame, params: list[str]) -> list[str]:
    """'vae (β=0.5) + kmeans': the model, the settings that vary across the sweep (seed aside), the clusterer."""
    varying = [p for p in params if p not in ("model", "clusterer", "seed") and table.loc[table[p] != "", p].astype(str).nunique() > 1]
    names = []
    for _, row in table.iterrows():
        settings = [f"{SYMBOLS.get(p, p)}={row[p]:.3g}" if isinstance(row[p], float) else f"{SYMBOLS.get(p, p)}={row[p]}" for p in varying if row[p] != ""]
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


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    digits = 1 if abs(mean) >= 100 else 4
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if not math.isnan(std) else "")


def format_methods(methods: pd.DataFrame) -> str:
    """The method table as text: 'mean ± std' per metric."""
    if methods.empty:
        return "(no finished trial)"
    shown = methods[["method", "n"]].copy()
    for m in (*METRICS, "seconds"):
        if f"{m}_mean" in methods:
            shown[m] = [_mean_std(a, b) for a, b in zip(methods[f"{m}_mean"], methods[f"{m}_std"])]
    return shown.to_string(index=False)


def format_leaderboard(table: pd.DataFrame) -> str:
    shown = table.drop(columns=["method"] + [c for c in ("error",) if not table[c].astype(bool).any()])
    shown = shown.drop(columns=[c for c in (*EXTERNAL, "val_loss", "noise_fraction") if c in shown and shown[c].isna().all()])
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
