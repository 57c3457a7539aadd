"""Sweep-level figures, made from the trial and method tables: the metrics heatmap, the β grid, β curves and the best methods.

The sweep draws the heatmap and the β grid when it ends; ``musicvae report``
draws the heatmap, the β curves and the best methods (their data,
:func:`beta_points` and :func:`best_methods`, also feed report.html's charts).
The β grid reuses the 2-D projections each trial saved with its artifacts
(``projection.parquet``), so it costs no extra UMAP run; a trial that saved
none (the default: trials draw no UMAP) is projected here from its
``embedding.parquet``, through the sweep's projection cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicvae.config.params import VARIATIONAL_MODELS, TrialParams
from musicvae.data.dataset import FeatureSet
from musicvae.evaluation.leaderboard import METRICS, TrialStatus, degenerate_rows, method_name, without_idle_noise
from musicvae.reporting import figures as fig
from musicvae.reporting import projection, study_figures
from musicvae.reporting.trial_projection import Projection, cached_projection, projection_sample, unprojected

HEATMAP_COLUMNS = (*METRICS, "seconds")
CURVE_METRICS = ("silhouette", "ari", "nmi")  # the β curves' panels
BAR_METRICS = ("silhouette", "ari", "nmi", "purity")  # the best methods' groups: all on one [-1, 1] scale
TOP_METHODS = 5  # best methods: this many by the primary objective, plus the best of each baseline
BASELINES = ("raw", "pca")


def _means_and_stds(methods: pd.DataFrame, columns: list[str], index: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``<m>_mean`` and ``<m>_std`` columns as two frames with the metric names as columns, indexed by ``index``."""
    rows = methods.set_index(index)
    return rows[[f"{m}_mean" for m in columns]].set_axis(columns, axis=1), rows[[f"{m}_std" for m in columns]].set_axis(columns, axis=1)


def metrics_heatmap(methods: pd.DataFrame, title: str) -> Any:
    """Methods x metrics, mean over seeds (± std), from :func:`musicvae.evaluation.leaderboard.method_table`."""
    columns = without_idle_noise([m for m in HEATMAP_COLUMNS if f"{m}_mean" in methods and m != "val_loss"], methods)  # val_loss: not comparable across models
    means, stds = _means_and_stds(methods, columns, "method")
    return study_figures.metrics_heatmap(means, stds, title=title)


def save_heatmap(methods: pd.DataFrame, name: str, folder: Path) -> Path:
    """``folder/metrics_heatmap.png``, as the sweep and the report draw it."""
    return fig.save_figure(metrics_heatmap(methods, f"{name}: metrics per method (mean ± std over seeds)"), folder / "metrics_heatmap.png")


def beta_points(table: pd.DataFrame) -> pd.DataFrame:
    """Per (variational model × clusterer × other varying settings, β): mean and std over seeds of the curve metrics.

    Settings other than β and the seed that vary (a latent size, say) stay in
    the series, so each error bar is a spread over seeds only. A seed with an
    undefined metric makes the point undefined, as in the method table.
    """
    ok = table[(table["status"] == TrialStatus.OK) & table["model"].isin(VARIATIONAL_MODELS)]
    if ok.empty:
        return pd.DataFrame(columns=["series", "beta"])
    ok = ok.assign(beta=ok["beta"].astype(float))
    params = [c for c in ok.columns if c in TrialParams.model_fields]
    varying = [p for p in params if p not in ("model", "clusterer", "beta", "seed") and ok[p].astype(str).nunique() > 1]
    labels = [method_name(row, varying) for _, row in ok.iterrows()]
    metrics = [m for m in CURVE_METRICS if ok[m].notna().any()]
    grouped = ok.assign(series=labels).groupby(["series", "beta"], sort=True)[metrics]
    means = grouped.agg(lambda values: values.mean(skipna=False)).add_suffix("_mean")
    stds = grouped.agg(lambda values: values.std(ddof=1, skipna=False)).add_suffix("_std")
    return pd.concat([grouped.size().rename("n"), means, stds], axis=1).reset_index()


def beta_curves(table: pd.DataFrame, name: str) -> tuple[Any | None, str]:
    """The metric-vs-β figure, or None and the reason it was not drawn."""
    points = beta_points(table)
    if points["beta"].nunique() < 2:
        why = "no variational model finished" if points.empty else f"a single β value ({points['beta'].iloc[0]:g})"
        return None, f"β curves not drawn: {why}; they need at least two β values."
    metrics = [m for m in CURVE_METRICS if f"{m}_mean" in points]
    title = f"{name}: clustering quality against β (mean ± std over seeds)"
    return study_figures.metric_curves_figure(points, "beta", "series", metrics, title=title, x_label="β (log scale)", log_x=True), ""


def best_methods(table: pd.DataFrame, methods: pd.DataFrame, top: int = TOP_METHODS) -> pd.DataFrame:
    """The first ``top`` methods of ``methods`` (ranked by the selection where the sweep made one, else the objective), then the
    best raw and PCA baselines not already among them.

    Adds a ``label`` column for the legend: the rank and method, then which
    baseline it is, whether it is degenerate (as selection sees it) and its seeds.
    """
    methods = methods.reset_index(drop=True)
    model_of = methods["method"].map(dict(zip(table["method"], table["model"])))
    best_baselines = {methods.index[model_of == b][0]: b for b in BASELINES if (model_of == b).any()}
    rows = sorted(set(range(min(top, len(methods)))) | set(best_baselines))  # rank order
    degenerate = degenerate_rows(methods)
    labels = []
    for i in rows:
        notes = [f"best {best_baselines[i]} baseline"] if i in best_baselines and i >= top else []
        notes += [f"{methods.at[i, 'largest_cluster_mean']:.0%} in one cluster"] if i in degenerate else []
        notes.append(f"n={int(methods.at[i, 'n'])}")
        labels.append(f"{i + 1}. {methods.at[i, 'method']} ({'; '.join(notes)})")
    return methods.loc[rows].assign(label=labels).reset_index(drop=True)


def best_methods_figure(table: pd.DataFrame, methods: pd.DataFrame, name: str, metric: str) -> Any:
    """Grouped bars, a group per metric, for :func:`best_methods` of ``methods`` in their order (``metric``: what ranks them,
    for the title: the selection rule after a sweep's selection); baselines hatched."""
    chosen = best_methods(table, methods)
    model_of = dict(zip(table["method"], table["model"]))
    metrics = [m for m in BAR_METRICS if f"{m}_mean" in chosen and chosen[f"{m}_mean"].notna().any()]
    means, stds = _means_and_stds(chosen, metrics, "label")
    hatched = tuple(label for label, method in zip(chosen["label"], chosen["method"]) if model_of.get(method) in BASELINES)
    title = f"{name}: the best methods by {metric}, and the best baselines (mean ± std over n seeds)"
    return study_figures.grouped_bars_figure(means, stds, title=title, y_label="score (higher is better)", hatched=hatched)


def _panel_trials(table: pd.DataFrame, methods: pd.DataFrame) -> list[pd.Series]:
    """For each (model, β): the lowest-seed trial of the best method at that β."""
    ok = table[(table["status"] == TrialStatus.OK) & table["model"].isin(VARIATIONAL_MODELS)]
    rank = {name: i for i, name in enumerate(methods["method"])}
    ok = ok.assign(rank=ok["method"].map(rank)).sort_values(["rank", "seed"], kind="stable")
    return [group.iloc[0] for _, group in ok.groupby(["model", "beta"], sort=False)]


def _coordinates(artifacts: Path, max_points: int, seed: int, cache_dir: Path | None) -> pd.DataFrame:
    """track_id, x, y, cluster: the trial's saved UMAP (or t-SNE) projection, else a UMAP of its embedding.

    Projected as the trial would have (its seed, the same sample) through the
    sweep's projection cache, which the projections after the sweep share.
    """
    embedding = pd.read_parquet(artifacts / "embedding.parquet")
    saved = artifacts / "projection.parquet"
    if saved.exists():
        table = pd.read_parquet(saved)
        method = next(m for m in projection.PROJECTIONS if f"{m}_x" in table)
        coords = pd.DataFrame({"track_id": table["track_id"], "x": table[f"{method}_x"], "y": table[f"{method}_y"]})
    else:
        sample, z = projection_sample(embedding, max_points, seed)
        xy = cached_projection(z, "umap", seed, cache_dir)
        coords = pd.DataFrame({"track_id": sample["track_id"].to_numpy(), "x": xy[:, 0], "y": xy[:, 1]})
    return coords.merge(embedding[["track_id", "cluster"]], on="track_id", how="left")


def beta_grid_projections(table: pd.DataFrame, methods: pd.DataFrame, checkpoints: dict[str, Any], max_points: int) -> list[Projection]:
    """The UMAPs :func:`beta_grid` will run (its panels' trials that saved none), so the sweep can compute them ahead, in parallel."""
    chosen = [row for row in _panel_trials(table, methods) if row["trial"] in checkpoints]
    if len({row["beta"] for row in chosen}) < 2:
        return []
    return [(projection_sample(embedding, max_points, int(row["seed"]))[1], "umap", int(row["seed"])) for row, embedding in unprojected(chosen, checkpoints)]


def beta_grid(
    table: pd.DataFrame, methods: pd.DataFrame, checkpoints: dict[str, Any], data: FeatureSet, max_points: int, cache_dir: Path | None = None
) -> Any | None:
    """One UMAP per (model, β), coloured by genre (by cluster without labels); None with fewer than two β values.

    ``cache_dir``: the sweep's projection cache (a panel whose trial saved no projection is projected through it).
    """
    chosen = [row for row in _panel_trials(table, methods) if row["trial"] in checkpoints]
    if len({row["beta"] for row in chosen}) < 2:
        return None
    genre = dict(zip(data.track_ids, data.labels)) if data.labels is not None else None
    panels = []
    for row in chosen:
        with checkpoints[row["trial"]].as_directory() as directory:
            coords = _coordinates(Path(directory) / "artifacts", max_points, int(row["seed"]), cache_dir)
        if genre is not None:
            colours, names = coords["track_id"].map(genre).to_numpy(), data.label_names
        else:
            colours = coords["cluster"].to_numpy()
            names = [f"cluster {c}" for c in range(int(colours.max()) + 1)]
        panels.append(fig.Panel(row["model"], float(row["beta"]), coords[["x", "y"]].to_numpy(np.float32), colours.astype(int), names))
    coloured = "genre" if genre is not None else "cluster"
    return fig.beta_grid_figure(panels, title=f"Latent space across β (UMAP, coloured by {coloured}; the best configuration at each β, its first seed)")


def sweep_figures(
    table: pd.DataFrame,
    methods: pd.DataFrame,
    checkpoints: dict[str, Any],
    data: FeatureSet,
    out: Path,
    name: str,
    max_points: int,
    projections: bool = True,
    cache_dir: Path | None = None,
) -> list[Path]:
    """Write the sweep's summary PNGs into ``out``; returns their paths.

    ``projections=False`` (the sweep asked for no UMAP/t-SNE at all:
    ``trials.beta_grid``) leaves out the β grid: drawing it runs UMAP here, in
    the driver, for each panel whose trial saved no projection, which costs
    more than all the other summary work together (bench/sweep_overhead.py).
    ``cache_dir``: the sweep's projection cache, shared with the trials and
    the projections drawn after the sweep (musicvae.reporting.trial_projection).
    """
    written = []
    if not methods.empty:
        written.append(save_heatmap(methods, name, out))
    grid = beta_grid(table, methods, checkpoints, data, max_points, cache_dir) if projections else None
    if grid is not None:
        written.append(fig.save_figure(grid, out / "beta_grid.png"))
    return written
