"""The sweep's pieces that need no Ray: k checks, leaderboard ordering and the label-free vs oracle summary."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from musicvae.config import parse_sweep
from musicvae.dataset import FeatureSet
from musicvae.sweep import check_clusters, describe_plan, format_leaderboard, leaderboard, selection_summary


def data(labels: np.ndarray | None, names: list[str]) -> FeatureSet:
    return FeatureSet(["a", "b"], np.zeros((2, 3), np.float32), ["f0", "f1", "f2"], labels, names, pd.DataFrame())


def test_unlabelled_data_needs_n_clusters() -> None:
    cfg = parse_sweep({"name": "x"})
    with pytest.raises(ValueError, match="n_clusters"):
        check_clusters(cfg, data(None, []))
    with pytest.raises(ValueError, match="single label"):
        check_clusters(cfg, data(np.array([0, 0]), ["rock"]))
    check_clusters(parse_sweep({"name": "x", "space": {"n_clusters": 4}}), data(None, []))
    check_clusters(cfg, data(np.array([0, 1]), ["folk", "rock"]))


def result(name: str, model: str, silhouette: float, ari: float, error: str | None = None) -> SimpleNamespace:
    metrics = {} if error else {"silhouette": silhouette, "ari": ari, "nmi": ari, "purity": 0.5, "time_total_s": 1.0}
    return SimpleNamespace(path=f"/x/{name}", config={"model": model, "clusterer": "kmeans"}, metrics=metrics, error=error)


def test_leaderboard_orders_by_the_objective_and_puts_failures_last() -> None:
    results = [
        result("t1", "pca", 0.20, 0.40),
        result("t2", "vae", 0.50, 0.10),
        result("t3", "vae", 0.0, 0.0, error="Traceback\nValueError: boom"),
        result("t4", "vae", 0.30, 0.30),
    ]
    table = leaderboard(results, "silhouette", "max")
    assert table["trial"].tolist() == ["t2", "t4", "t1", "t3"]
    assert table.loc[3, "status"] == "FAILED" and table.loc[3, "error"] == "ValueError: boom"
    assert math.isnan(table.loc[3, "silhouette"])
    assert table.loc[2, "beta"] == "" and table.loc[0, "beta"] == 1.0  # β means nothing for PCA
    assert leaderboard(results, "davies_bouldin", "min") is not None

    summary = selection_summary(table, "silhouette")
    assert "Selected by silhouette: trial t2" in summary and "Oracle (best ARI, uses labels): trial t1" in summary
    text = format_leaderboard(table)
    assert "ValueError: boom" in text and "t4" in text


def test_dry_run_plan_mentions_what_will_run() -> None:
    cfg = parse_sweep({"name": "x", "search": {"metric": "ari"}})
    plan = describe_plan(cfg)
    assert "uses labels: oracle selection" in plan and "Budget: 8 trials" in plan
