"""Sweep-level figures, made from the finished trials: the metrics heatmap and the β grid.

The β grid reuses the 2-D projections each trial saved with its artifacts
(``projection.parquet``), so it costs no extra UMAP run; a trial that saved
none is projected here from its ``embedding.parquet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicvae import figures as fig
from musicvae import projection, study_figures
from musicvae.dataset import FeatureSet
from musicvae.leaderboard import METRICS
from musicvae.params import VARIATIONAL_MODELS

HEATMAP_COLUMNS = (*METRICS, "seconds")


def metrics_heatmap(methods: pd.DataFrame, title: str) -> Any:
    """Methods x metrics, mean over seeds (± std), from :func:`musicvae.leaderboard.method_table`."""
    columns = [m for m in HEATMAP_COLUMNS if f"{m}_mean" in methods and m != "val_loss"]  # val_loss: not comparable across models
    if "noise_fraction" in columns and not methods["noise_fraction_mean"].fillna(0).any():
        columns.remove("noise_fraction")  # no density clusterer in the sweep: a column of zeros says nothing
    means = methods.set_index("method")[[f"{m}_mean" for m in columns]].set_axis(columns, axis=1)
    stds = methods.set_index("method")[[f"{m}_std" for m in columns]].set_axis(columns, axis=1)
    return study_figures.metrics_heatmap(means, stds, title=title)


def _panel_trials(table: pd.DataFrame, methods: pd.DataFrame) -> list[pd.Series]:
    """For each (model, β): the lowest-seed trial of the best method at that β."""
    ok = table[(table["status"] == "OK") & table["model"].isin(VARIATIONAL_MODELS)]
    rank = {name: i for i, name in enumerate(methods["method"])}
    ok = ok.assign(rank=ok["method"].map(rank)).sort_values(["rank", "seed"], kind="stable")
    return [group.iloc[0] for _, group in ok.groupby(["model", "beta"], sort=False)]


def _coordinates(artifacts: Path, max_points: int, seed: int) -> pd.DataFrame:
    """track_id, x, y, cluster: the trial's saved UMAP (or t-SNE) projection, else a UMAP of its embedding."""
    embedding = pd.read_parquet(artifacts / "embedding.parquet")
    saved = artifacts / "projection.parquet"
    if saved.exists():
        table = pd.read_parquet(saved)
        method = next(m for m in projection.PROJECTIONS if f"{m}_x" in table)
        coords = pd.DataFrame({"track_id": table["track_id"], "x": table[f"{method}_x"], "y": table[f"{method}_y"]})
    else:
        rows = fig.sample_rows(len(embedding), max_points, seed)
        xy = projection.project(embedding.filter(regex=r"^z\d+$").to_numpy()[rows], "umap", seed=seed)
        coords = pd.DataFrame({"track_id": embedding["track_id"].to_numpy()[rows], "x": xy[:, 0], "y": xy[:, 1]})
    return coords.merge(embedding[["track_id", "cluster"]], on="track_id", how="left")


def beta_grid(table: pd.DataFrame, methods: pd.DataFrame, checkpoints: dict[str, Any], data: FeatureSet, max_points: int, seed: int = 0) -> Any | None:
    """One UMAP per (model, β), coloured by genre (by cluster without labels); None with fewer than two β values."""
    chosen = [row for row in _panel_trials(table, methods) if row["trial"] in checkpoints]
    if len({row["beta"] for row in chosen}) < 2:
        return None
    genre = dict(zip(data.track_ids, data.labels)) if data.labels is not None else None
    panels = []
    for row in chosen:
        with checkpoints[row["trial"]].as_directory() as directory:
            coords = _coordinates(Path(directory) / "artifacts", max_points, seed)
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
) -> list[Path]:
    """Write the sweep's summary PNGs into ``out``; returns their paths.

    ``projections=False`` (the sweep asked its trials for no UMAP/t-SNE) leaves
    out the β grid too: drawing it would run UMAP here, in the driver, which
    costs more than all the other summary work together (bench/sweep_overhead.py).
    """
    written = []
    if not methods.empty:
        heatmap = metrics_heatmap(methods, f"{name}: metrics per method (mean ± std over seeds)")
        written.append(fig.save_figure(heatmap, out / "metrics_heatmap.png"))
    grid = beta_grid(table, methods, checkpoints, data, max_points) if projections else None
    if grid is not None:
        written.append(fig.save_figure(grid, out / "beta_grid.png"))
    return written
