"""The sweep's pieces that need no Ray: k checks, the leaderboards and the label-free vs oracle summary."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from musicvae.cli import describe_plan
from musicvae.config.params import Range, default_k_range, k_bound
from musicvae.config.sweep_file import SweepFileError, parse_sweep
from musicvae.data.locations import find_run, storage_root
from musicvae.evaluation.leaderboard import leaderboard, method_table, pareto_front
from musicvae.reporting.tables import format_leaderboard, format_methods, selection_summary
from musicvae.tune.sweep import with_k


def test_k_is_searched_by_default_and_a_k_the_tracks_cannot_hold_is_an_error() -> None:
    """Without n_clusters in the space a sweep searches k (labels or none); a file's own k is kept, checked against the tracks."""
    grid = with_k(parse_sweep({"name": "x", "search": {"sampler": "grid"}}), 300)
    assert grid.space["n_clusters"] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 12] == default_k_range(300)
    tpe = with_k(parse_sweep({"name": "x"}), 3000)
    assert tpe.space["n_clusters"] == Range(low=2, high=20)
    assert k_bound(50) == 5 and k_bound(10) == 3 and k_bound(10**6) == 20
    fixed = parse_sweep({"name": "x", "space": {"n_clusters": 4}})
    assert with_k(fixed, 300) is fixed
    assert "n_clusters" not in with_k(parse_sweep({"name": "x", "space": {"clusterer": ["dbscan", "hdbscan"]}}), 300).space  # they find k
    with pytest.raises(SweepFileError, match=r"space\.n_clusters: 400 clusters exceed the 300 tracks"):
        with_k(parse_sweep({"name": "x", "space": {"n_clusters": [4, 400]}}), 300)
    with pytest.raises(SweepFileError, match=r"space\.n_clusters: 40 clusters exceed the 30 tracks"):
        with_k(parse_sweep({"name": "x", "space": {"n_clusters": {"low": 2, "high": 40}}}), 30)
    with pytest.raises(SweepFileError, match=r"space\.n_clusters: value 1 is invalid: .*greater than or equal to 2"):
        parse_sweep({"name": "x", "space": {"n_clusters": [1, 4]}})


def result(name: str, model: str, silhouette: float, ari: float, error: str | None = None, **config) -> SimpleNamespace:
    metrics = {} if error else {"silhouette": silhouette, "ari": ari, "nmi": ari, "purity": 0.5, "trial_seconds": 1.0}
    return SimpleNamespace(path=f"/x/{name}", config={"model": model, "clusterer": "kmeans", **config}, metrics=metrics, error=error)


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
    assert table["method"].tolist() == ["vae + kmeans", "vae + kmeans", "pca + kmeans", "vae + kmeans"]
    by_ari_ascending = leaderboard(results, "ari", "min")  # the mode decides the order; failures stay last
    assert by_ari_ascending["trial"].tolist() == ["t2", "t4", "t1", "t3"]
    assert leaderboard(results, "ari", "max")["trial"].tolist() == ["t1", "t4", "t2", "t3"]
    text = format_leaderboard(table)
    assert "ValueError: boom" in text and "t4" in text


def test_two_sampled_betas_that_print_alike_are_two_methods() -> None:
    """A method is a configuration: β 1.0012 and 1.0034 (both '1' at three digits) are two methods of one seed each, not one of two."""
    results = [result("a", "vae", 0.3, 0.1, beta=1.0012, seed=0), result("b", "vae", 0.5, 0.2, beta=1.0034, seed=0), result("c", "pca", 0.4, 0.3, seed=0)]
    methods = method_table(leaderboard(results, "silhouette", "max"), "silhouette", "max")
    assert sorted(methods["method"]) == ["pca + kmeans", "vae (β=1.0012) + kmeans", "vae (β=1.0034) + kmeans"]
    assert (methods["n"] == 1).all()
    plain = [result("a", "vae", 0.3, 0.1, beta=0.5, seed=0), result("b", "vae", 0.5, 0.2, beta=4.0, seed=0)]
    assert sorted(method_table(leaderboard(plain, "silhouette", "max"), "silhouette", "max")["method"]) == ["vae (β=0.5) + kmeans", "vae (β=4) + kmeans"]


def test_methods_aggregate_over_seeds_and_selection_uses_the_mean() -> None:
    results = [
        # vae β=4: one lucky seed (0.9) but a low mean; vae β=0.5: steadily good
        result("a0", "vae", 0.90, 0.05, beta=4.0, seed=0),
        result("a1", "vae", 0.10, 0.05, beta=4.0, seed=1),
        result("a2", "vae", 0.10, 0.05, beta=4.0, seed=2),
        result("b0", "vae", 0.40, 0.20, beta=0.5, seed=0),
        result("b1", "vae", 0.42, 0.22, beta=0.5, seed=1),
        result("b2", "vae", 0.44, 0.24, beta=0.5, seed=2),
        result("c0", "pca", 0.30, 0.30, seed=0),
        result("c1", "pca", 0.0, 0.0, error="Traceback\nRuntimeError: died", seed=1),
    ]
    table = leaderboard(results, "silhouette", "max")
    assert table.loc[0, "trial"] == "a0"  # the best single trial...
    methods = method_table(table, "silhouette", "max")
    assert methods["method"].tolist() == ["vae (β=0.5) + kmeans", "vae (β=4) + kmeans", "pca + kmeans"]  # ...is not the best method
    best = methods.iloc[0]
    assert best["n"] == 3 and best["silhouette_mean"] == pytest.approx(0.42) and best["silhouette_std"] == pytest.approx(0.02)
    pca = methods.iloc[2]
    assert pca["n"] == 1 and math.isnan(pca["silhouette_std"])  # the failed seed is not averaged in
    summary = selection_summary(table, "silhouette", "max")
    assert "Selected by silhouette (mean over 3 seed(s)): vae (β=0.5) + kmeans" in summary
    assert "Oracle (best mean ARI, uses labels): pca + kmeans" in summary
    text = format_methods(methods)
    assert "0.4200 ± 0.0200" in text and "pca + kmeans" in text


def test_lower_is_better_objectives_sort_ascending() -> None:
    results = [result("t1", "pca", 0.2, 0.1), result("t2", "vae", 0.5, 0.1)]
    for r, db in zip(results, (2.0, 1.0)):
        r.metrics["davies_bouldin"] = db
    methods = method_table(leaderboard(results, "davies_bouldin", "min"), "davies_bouldin", "min")
    assert methods["method"].tolist() == ["vae + kmeans", "pca + kmeans"]


def test_dry_run_plan_mentions_what_will_run() -> None:
    cfg = parse_sweep({"name": "x", "search": {"metric": "ari"}})
    plan = describe_plan(cfg)
    assert "uses labels: oracle selection" in plan and "Budget: 8 trials" in plan
    grid = describe_plan(parse_sweep({"name": "x", "search": {"sampler": "grid"}, "space": {"model": ["pca", "raw"], "seed": [0, 1, 2]}}))
    assert "grid sampler" in grid and "Budget: 6 trials" in grid


def test_dry_run_plan_says_which_projections_each_trial_draws_and_which_the_sweep_draws_after() -> None:
    lines = {line.split(":")[0]: line for line in describe_plan(parse_sweep({"name": "x"})).splitlines()}
    assert "figures disentanglement (no UMAP/t-SNE)" in lines["Per trial"]
    assert "UMAP and t-SNE of the selected method's trial and the oracle's" in lines["After the trials"]
    assert "musicvae report NAME --figures RUN" in lines["After the trials"]
    every = describe_plan(parse_sweep({"name": "x", "trials": {"figures": ["umap", "disentanglement"]}}))
    assert "figures umap, disentanglement;" in every and "the β grid, from the projections every trial draws" in every
    off = describe_plan(parse_sweep({"name": "x", "trials": {"after_sweep_projections": False}}))
    assert "After the trials: the metrics heatmap; no projection" in off


def test_degenerate_clusterings_cannot_be_selected_and_undefined_seeds_are_not_averaged_away() -> None:
    def run(name: str, clusterer: str, silhouette: float, largest: float, seed: int) -> SimpleNamespace:
        metrics = {"silhouette": silhouette, "ari": 0.1, "nmi": 0.1, "purity": 0.4, "largest_cluster": largest, "trial_seconds": 1.0}
        return SimpleNamespace(path=f"/x/{name}", config={"model": "vae", "clusterer": clusterer, "seed": seed}, metrics=metrics, error=None)

    results = [
        run("d0", "dbscan", 0.62, 0.99, 0),  # outliers vs everything else: a high silhouette, no grouping
        run("d1", "dbscan", 0.60, 0.98, 1),
        run("h0", "hdbscan", 0.90, 0.50, 0),
        run("h1", "hdbscan", math.nan, 1.0, 1),  # one seed found a single cluster
        run("k0", "kmeans", 0.20, 0.30, 0),
        run("k1", "kmeans", 0.22, 0.31, 1),
    ]
    table = leaderboard(results, "silhouette", "max")
    methods = method_table(table, "silhouette", "max")
    assert math.isnan(methods.set_index("method").loc["vae + hdbscan", "silhouette_mean"])  # not 0.90 from its lucky seed
    summary = selection_summary(table, "silhouette", "max")
    assert "Selected by silhouette (mean over 2 seed(s)): vae + kmeans" in summary
    assert "Not selectable, 90%+ of the tracks in one cluster: vae + dbscan" in summary


def test_pareto_front_keeps_exactly_the_non_dominated_methods() -> None:
    methods = pd.DataFrame(
        {
            "method": ["a", "b", "c", "d", "e"],
            "silhouette_mean": [0.5, 0.4, 0.3, 0.45, math.nan],
            "val_loss_mean": [30.0, 20.0, 25.0, 30.0, 1.0],  # c is beaten by b on both; d by a (tie on loss, worse silhouette)
        }
    )
    front = pareto_front(methods, ["silhouette", "val_loss"], ["max", "min"])
    assert front["method"].tolist() == ["a", "b"]  # e: undefined silhouette, not on the front
    assert pareto_front(methods, ["silhouette"], ["max"])["method"].tolist() == ["a"]


def test_storage_uris_pass_through_and_folders_resolve(tmp_path, monkeypatch) -> None:
    assert storage_root("s3://bucket/sweeps") == "s3://bucket/sweeps"
    monkeypatch.chdir(tmp_path)
    assert storage_root("results") == str(tmp_path / "results")


def test_find_run_picks_the_latest_run_of_a_sweep_or_a_named_run(tmp_path) -> None:
    for name in ("demo-20261101-100000", "demo-20261102-090000", "demo-extra-20261103-090000", "other-20261101-100000"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "musicvae-sweep.yaml").write_text("name: x\n")
    (tmp_path / "demo-20261104-090000").mkdir()  # no sweep file: not a musicvae run
    assert find_run(str(tmp_path), "demo").endswith("/demo-20261102-090000")
    assert find_run(str(tmp_path), "demo-20261101-100000").endswith("/demo-20261101-100000")
    assert find_run(str(tmp_path), "demo-extra").endswith("/demo-extra-20261103-090000")
    with pytest.raises(ValueError, match="sweeps there: demo, demo-extra, other"):
        find_run(str(tmp_path), "nope")


def test_fixed_points_run_first_and_the_grid_does_not_repeat_them() -> None:
    cfg = parse_sweep(
        {
            "name": "t",
            "space": {"model": ["pca", "vae"], "latent_dim": [4, 8]},
            "search": {"sampler": "grid", "points_to_evaluate": [{"model": "vae", "latent_dim": 8}]},
        }
    )
    assert cfg.fixed_points[0] == {"model": "vae", "latent_dim": 8}
    assert len(cfg.fixed_points) == cfg.num_samples == 4
    assert "1 fixed point(s) first" in describe_plan(cfg)
