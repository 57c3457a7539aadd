"""Sweep-level figures from finished trials' checkpoints (real Ray Checkpoint objects over folders)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from ray.tune import Checkpoint

from musicvae.data.dataset import FeatureSet
from musicvae.evaluation.leaderboard import leaderboard, method_table
from musicvae.reporting.summary import sweep_figures


def trial_checkpoint(root: Path, name: str, ids: list[str], with_projection: bool) -> Checkpoint:
    artifacts = root / name / "artifacts"
    artifacts.mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    embedding = pd.DataFrame(rng.normal(size=(len(ids), 4)), columns=[f"z{i:02d}" for i in range(4)])
    embedding.insert(0, "cluster", np.arange(len(ids)) % 3)
    embedding.insert(0, "track_id", ids)
    embedding.to_parquet(artifacts / "embedding.parquet")
    if with_projection:
        pd.DataFrame({"track_id": ids[::2], "umap_x": rng.normal(size=len(ids[::2])), "umap_y": rng.normal(size=len(ids[::2]))}).to_parquet(
            artifacts / "projection.parquet"
        )
    return Checkpoint.from_directory(str(root / name))


def leaderboard_rows() -> pd.DataFrame:
    """The trial table of a small β sweep, built as the sweep builds it (trial names are checkpoint keys)."""
    results = [
        SimpleNamespace(
            path=f"/x/{trial}", config=config, metrics={"silhouette": silhouette, "ari": 0.1, "nmi": 0.1, "purity": 0.5, "trial_seconds": 1.0}, error=None
        )
        for trial, config, silhouette in [
            ("v05s0", {"model": "vae", "beta": 0.5, "seed": 0}, 0.2),
            ("v05s1", {"model": "vae", "beta": 0.5, "seed": 1}, 0.3),
            ("v4s0", {"model": "vae", "beta": 4.0, "seed": 0}, 0.4),
            ("p0", {"model": "pca", "seed": 0}, 0.1),
        ]
    ]
    return leaderboard(results, "silhouette", "max")


def test_sweep_figures_draw_the_heatmap_and_the_beta_grid(tmp_path: Path) -> None:
    ids = [str(i) for i in range(60)]
    table = leaderboard_rows()
    methods = method_table(table, "silhouette", "max")
    checkpoints = {
        "v05s0": trial_checkpoint(tmp_path, "v05s0", ids, with_projection=True),
        "v05s1": trial_checkpoint(tmp_path, "v05s1", ids, with_projection=True),
        "v4s0": trial_checkpoint(tmp_path, "v4s0", ids, with_projection=False),  # projected on the spot
    }
    labelled = FeatureSet(ids, np.zeros((60, 2), np.float32), ["a", "b"], np.arange(60) % 2, ["Folk", "Rock"], pd.DataFrame())
    written = sweep_figures(table, methods, checkpoints, labelled, tmp_path / "out", "t", max_points=1000, cache_dir=tmp_path / "cache")
    assert sorted(p.name for p in written) == ["beta_grid.png", "metrics_heatmap.png"]
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1  # v4s0's UMAP, in the projection cache the sweep's other projections share
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)

    unlabelled = FeatureSet(ids, np.zeros((60, 2), np.float32), ["a", "b"], None, [], pd.DataFrame())  # coloured by cluster
    assert len(sweep_figures(table, methods, checkpoints, unlabelled, tmp_path / "out2", "t", max_points=1000)) == 2
    # No projection asked for at all (trials.beta_grid false): no β grid either (it would run UMAP in the driver).
    no_grid = sweep_figures(table, methods, checkpoints, labelled, tmp_path / "out3", "t", max_points=1000, projections=False)
    assert [p.name for p in no_grid] == ["metrics_heatmap.png"]


def test_no_beta_grid_with_a_single_beta(tmp_path: Path) -> None:
    ids = [str(i) for i in range(20)]
    table = leaderboard_rows()
    table = table[table["trial"] != "v4s0"]
    methods = method_table(table, "silhouette", "max")
    checkpoints = {"v05s0": trial_checkpoint(tmp_path, "v05s0", ids, with_projection=True)}
    data = FeatureSet(ids, np.zeros((20, 2), np.float32), ["a", "b"], None, [], pd.DataFrame())
    assert [p.name for p in sweep_figures(table, methods, checkpoints, data, tmp_path / "out", "t", max_points=100)] == ["metrics_heatmap.png"]
