"""The projection figure where it is read: after the sweep for the selected and the oracle trial, on demand for any other.

Real MLflow on a temporary SQLite store, the runs written as the sweep's
callback writes them (tags, params, final metrics, the trial's artifacts);
trials' checkpoints are real Tune Checkpoint objects over folders; no Ray runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import blobs
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from ray.tune import Checkpoint

from musicvae.cli import main
from musicvae.config.sections import TrialsConfig
from musicvae.evaluation.leaderboard import TrialRecord, trial_table
from musicvae.evaluation.selection import Selection
from musicvae.reporting.trial_projection import cached_projection, project_selected
from musicvae.tracking.parent_run import ParentRun

EXPERIMENT = "projections"
PROJECTION_FILES = {"projection.parquet", "figures/projection.png"}
# name -> (config, silhouette): the winner's method (β=0.5) has two seeds, the oracle's (β=4) one, pca is neither.
TRIALS = {
    "vae-kmeans-a0000001": ({"model": "vae", "beta": 0.5, "seed": 1}, 0.5),
    "vae-kmeans-a0000002": ({"model": "vae", "beta": 0.5, "seed": 0}, 0.4),
    "vae-kmeans-a0000003": ({"model": "vae", "beta": 4.0, "seed": 0}, 0.3),
    "pca-kmeans-a0000004": ({"model": "pca", "seed": 0}, 0.2),
}
WINNER, ORACLE = "vae (β=0.5) + kmeans", "vae (β=4) + kmeans"


def embedding_table(seed: int) -> pd.DataFrame:
    """What a trial's embedding.parquet holds: track_id, cluster, genre, z00..."""
    x, labels = blobs(50, 3, 4, seed=seed)
    table = pd.DataFrame(x, columns=[f"z{i:02d}" for i in range(4)])
    table.insert(0, "genre", np.array(["folk", "jazz", "rock"])[labels])
    table.insert(0, "cluster", labels)
    table.insert(0, "track_id", [str(i) for i in range(len(x))])
    return table


def write_sweep(client: MlflowClient, experiment_id: str, sweep: str, root: Path) -> tuple[str, dict[str, str], dict[str, Checkpoint]]:
    """A finished sweep as musicvae leaves it: parent run, a child run per trial with its artifacts, each trial's checkpoint."""
    parent = client.create_run(experiment_id, run_name=sweep, tags={"musicvae.sweep": sweep, "musicvae.role": "sweep"}).info.run_id
    client.log_batch(parent, params=[Param("objective", "silhouette"), Param("mode", "max")])
    client.log_text(parent, f"name: {sweep}\ntrials: {{figure_points: 120}}\n", "sweep.yaml")
    run_ids, checkpoints = {}, {}
    for i, (name, (config, silhouette)) in enumerate(TRIALS.items()):
        tags = {MLFLOW_PARENT_RUN_ID: parent, "musicvae.sweep": sweep, "musicvae.role": "trial", "ray.trial_id": name.rsplit("-", 1)[-1]}
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
        metrics = {"silhouette": silhouette, "ari": 0.1 * i, "nmi": 0.1, "largest_cluster": 0.4, "trial_seconds": 1.0}
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in config.items()], metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        artifacts = root / sweep / name / "artifacts"
        artifacts.mkdir(parents=True)
        embedding_table(i).to_parquet(artifacts / "embedding.parquet", index=False)
        client.log_artifacts(run_id, str(artifacts))
        client.set_terminated(run_id, "FINISHED")
        run_ids[name], checkpoints[name] = run_id, Checkpoint.from_directory(str(artifacts.parent))
    client.set_terminated(parent, "FINISHED")
    return parent, run_ids, checkpoints


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, MlflowClient, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    return uri, client, client.create_experiment(EXPERIMENT, artifact_location=str(tmp_path / "artifacts"))


def logged(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "figures")}


def selection(winner: str, oracle: str) -> Selection:
    scores = pd.DataFrame({"method": [WINNER, ORACLE, "pca + kmeans"], "ari": [0.1, 0.1, 0.1]})
    scores.loc[scores["method"] == oracle, "ari"] = 0.5
    return Selection(scores, "combined", winner, {"combined": winner}, True, 0.3, 1, 60)


def test_after_the_sweep_the_selected_and_the_oracle_trial_get_their_projection_and_no_other(store, tmp_path) -> None:
    uri, client, experiment_id = store
    parent, run_ids, checkpoints = write_sweep(client, experiment_id, "pick", tmp_path)
    records = [TrialRecord(name, "OK", config, {"silhouette": s, "trial_seconds": 1.0}) for name, (config, s) in TRIALS.items()]
    table = trial_table(records, "silhouette", "max")
    assert set(table["method"]) == {WINNER, ORACLE, "pca + kmeans"}
    sweep = ParentRun(client, experiment_id, parent, uri)
    trials, cache = TrialsConfig(figure_points=100), tmp_path / "cache" / "projections"

    drawn = project_selected(sweep, table, selection(WINNER, ORACLE), checkpoints, trials, cache)
    # The winner's lowest-seed trial (the one the report's explorer shows) and the oracle's; nothing else.
    assert drawn == ["vae-kmeans-a0000002", "vae-kmeans-a0000003"]
    for name, run_id in run_ids.items():
        assert (PROJECTION_FILES <= logged(client, run_id)) == (name in drawn), name
    projection = pd.read_parquet(client.download_artifacts(run_ids["vae-kmeans-a0000002"], "projection.parquet", str(tmp_path)))
    assert len(projection) == 100 and {"track_id", "umap_x", "umap_y", "tsne_x", "tsne_y"} <= set(projection.columns)
    assert len(list(cache.glob("*.npy"))) == 4  # UMAP and t-SNE of two embeddings, in the sweep's projection cache

    # The oracle is the winner: one trial, drawn once. Asked for none: nothing.
    assert project_selected(sweep, table, selection(WINNER, WINNER), checkpoints, trials, cache) == ["vae-kmeans-a0000002"]
    assert project_selected(sweep, table, selection(WINNER, ORACLE), checkpoints, TrialsConfig(after_sweep_projections=False), cache) == []


def test_report_figures_draws_a_trials_projection_into_its_own_run(store, tmp_path, capsys) -> None:
    uri, client, experiment_id = store
    _, run_ids, _ = write_sweep(client, experiment_id, "pick", tmp_path)
    _, other_sweep, _ = write_sweep(client, experiment_id, "other", tmp_path)
    base = ["report", "pick", "--tracking-uri", uri, "--experiment", EXPERIMENT, "--out", str(tmp_path / "reports")]
    best, pca = run_ids["vae-kmeans-a0000002"], run_ids["pca-kmeans-a0000004"]
    assert not any(PROJECTION_FILES & logged(client, run_id) for run_id in run_ids.values())

    assert main([*base, "--figures", best, "pca-kmeans-a0000004"]) == 0  # a run id, and a trial name as trials.csv lists it
    for name, run_id in run_ids.items():
        assert (PROJECTION_FILES <= logged(client, run_id)) == (run_id in (best, pca)), name
    projection = pd.read_parquet(client.download_artifacts(best, "projection.parquet", str(tmp_path)))
    assert len(projection) == 120  # of 150 tracks: the sweep file's trials.figure_points
    # The report's explorer (the best method by the objective, its lowest seed: this trial) reads the projection just drawn.
    page = (tmp_path / "reports" / "pick" / "report.html").read_text()
    assert "vae-kmeans-a0000002" in page and "computed umap" not in page
    capsys.readouterr()

    # A run that is not a trial of this sweep (another sweep's, or no run at all) is named, and nothing is drawn.
    for bad in (other_sweep["vae-kmeans-a0000003"], "0123456789abcdef"):
        assert main([*base, "--figures", run_ids["vae-kmeans-a0000003"], bad]) == 1
        error = capsys.readouterr().err
        assert f"--figures {bad}: not a trial of sweep 'pick'" in error, error
    assert not PROJECTION_FILES & logged(client, run_ids["vae-kmeans-a0000003"])


@pytest.mark.slow
def test_projections_computed_ahead_in_ray_tasks_are_the_ones_the_driver_draws(store, tmp_path, local_ray, monkeypatch) -> None:
    """The sweep computes the after-sweep projections side by side in Ray tasks; the figures then find every one in the cache."""
    from musicvae.reporting import projection
    from musicvae.reporting.trial_projection import selected_projections
    from musicvae.tune.sweep import start_projections, store_projections

    uri, client, experiment_id = store
    parent, run_ids, checkpoints = write_sweep(client, experiment_id, "ahead", tmp_path)
    records = [TrialRecord(name, "OK", config, {"silhouette": s, "trial_seconds": 1.0}) for name, (config, s) in TRIALS.items()]
    table = trial_table(records, "silhouette", "max")
    trials, ahead, serial = TrialsConfig(figure_points=100), tmp_path / "ahead", tmp_path / "serial"
    jobs = selected_projections(table, selection(WINNER, ORACLE), checkpoints, trials)
    assert [(method, seed) for _, method, seed in jobs] == [("umap", 0), ("tsne", 0)] * 2  # the winner's seed-0 trial, the oracle's
    store_projections(start_projections(jobs[2:], ahead, start_projections(jobs + jobs[:1], ahead)), ahead)  # a job asked for again runs once
    assert len(list(ahead.glob("*.npy"))) == 4

    computed = []
    real = projection.project
    monkeypatch.setattr(projection, "project", lambda *args, **kwargs: computed.append(args[1]) or real(*args, **kwargs))
    sweep = ParentRun(client, experiment_id, parent, uri)
    project_selected(sweep, table, selection(WINNER, ORACLE), checkpoints, trials, ahead)
    assert computed == []  # all four from the cache
    assert PROJECTION_FILES <= logged(client, run_ids["vae-kmeans-a0000003"])

    # Projected in this process instead, into a fresh cache: the same entries, the same coordinates (seeded UMAP and t-SNE).
    for z, method, seed in jobs:
        cached_projection(z, method, seed, serial)
    assert computed == ["umap", "tsne", "umap", "tsne"]
    assert sorted(f.name for f in serial.glob("*.npy")) == sorted(f.name for f in ahead.glob("*.npy"))
    for entry in serial.glob("*.npy"):
        np.testing.assert_allclose(np.load(entry), np.load(ahead / entry.name), atol=1e-5)


def test_report_reads_figure_points_through_the_validated_sweep_loader(store) -> None:
    """A sweep file today's schema accepts gives its trials.figure_points; one it refuses (an older musicvae's) the default."""
    from musicvae.reporting.report import figure_points

    _, client, experiment_id = store
    for text, expected in (("name: a\ntrials: {figure_points: 120}\n", 120), ("name: b\ntrials: {figure_points: 120, colour: red}\n", 3000)):
        run = client.create_run(experiment_id)
        client.log_text(run.info.run_id, text, "sweep.yaml")
        assert figure_points(client, client.get_run(run.info.run_id)) == expected, text
    assert figure_points(client, client.create_run(experiment_id)) == 3000  # no sweep.yaml at all
