"""End to end through real Ray (local), real Optuna and a real MLflow SQLite store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import ray
from mlflow.tracking import MlflowClient
from ray import tune

from musicvae.config.sections import ResourcesConfig, TrialsConfig
from musicvae.config.sweep_file import parse_sweep
from musicvae.data.dataset import FeatureSet
from musicvae.evaluation.leaderboard import method_trial
from musicvae.tracking.runs import close_unfinished_children, connect, remove_forgotten_children
from musicvae.tune.sweep import run_sweep
from musicvae.tune.trainable import tune_trainable

REPO = Path(__file__).resolve().parents[1]


def three_genres(per_genre: int, n_features: int) -> FeatureSet:
    """Three genres of ``per_genre`` tracks, N(0, 1) features shifted by 2 per genre: a FeatureSet a small VAE clusters in seconds."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), per_genre)
    x = (rng.normal(0, 1, (3 * per_genre, n_features)) + labels[:, None] * 2).astype(np.float32)
    ids = [str(i) for i in range(len(x))]
    return FeatureSet(ids, x, [f"f{i}" for i in range(n_features)], labels, ["a", "b", "c"], pd.DataFrame({"track_id": ids}))


def sweep_config(tmp_path: Path, collection: Path, **overrides) -> dict:
    raw = {
        "name": "e2e",
        "data": {
            "source": {"kind": "manifest", "path": str(collection / "metadata.csv"), "text_columns": ["title", "artist"]},
            "audio": {"duration": 1.0},
            "cache_dir": str(tmp_path / "cache"),
        },
        "space": {"model": ["pca", "vae"], "latent_dim": [4, 8], "epochs": 5, "beta": {"low": 0.5, "high": 4.0, "log": True}, "n_clusters": [6, 36]},
        "search": {"num_samples": 5, "max_concurrent_trials": 2, "sampler": "random", "seed": 3},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "e2e"},
        "storage_path": str(tmp_path / "ray_results"),
    }
    raw.update(overrides)
    return raw


@pytest.mark.slow
def test_sweep_logs_parent_and_children_and_survives_failed_trials(tmp_path: Path, tiny_collection: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = parse_sweep(sweep_config(tmp_path, tiny_collection))
    outcome = run_sweep(cfg, "name: e2e\n")
    # The sweep's store must not leak into the process environment (and so into later runs).
    assert "MLFLOW_TRACKING_URI" not in os.environ

    mlflow.set_tracking_uri(outcome.tracking_uri)
    runs = mlflow.search_runs(experiment_names=["e2e"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("musicvae.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == outcome.parent_run_id]
    assert len(parents) == 1 and parents[0].info.run_id == outcome.parent_run_id
    assert len(children) == 5 == len(runs) - 1
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.params["objective"] == "silhouette" and parents[0].data.params["n_tracks"] == "36"

    # 36 clusters of 36 tracks cannot be made again from the resampled 80 %: those trials fail, are recorded, and the sweep goes on.
    by_k = {k: [r for r in children if r.data.params["n_clusters"] == k] for k in ("6", "36")}
    assert by_k["6"] and by_k["36"], "the seeded random sampler should draw both values of n_clusters"
    for run in by_k["36"]:
        assert run.info.status == "FAILED"
        assert "n_samples" in run.data.tags["musicvae.error"] or "n_clusters" in run.data.tags["musicvae.error"]
    client = MlflowClient(outcome.tracking_uri)
    for run in by_k["6"]:
        assert run.info.status == "FINISHED"
        assert {"silhouette", "calinski_harabasz", "davies_bouldin", "ari", "nmi", "purity"} <= set(run.data.metrics)
        assert run.data.tags["musicvae.sweep"] == "e2e"
        if run.data.params["model"] == "vae":
            assert len(client.get_metric_history(run.info.run_id, "val_loss")) >= 5  # one point per epoch
            assert "beta" in run.data.params
        else:
            assert "beta" not in run.data.params  # conditional: β only for the VAE
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)

    tags = client.get_run(outcome.parent_run_id).data.tags
    shown = {method_trial(outcome.leaderboard, tags[role])["trial"] for role in ("musicvae.selected", "musicvae.oracle")}
    for run in by_k["6"]:  # each finished trial's artifacts reached its run
        files = {a.path for a in client.list_artifacts(run.info.run_id)} | {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
        assert {"embedding.parquet", "latents.json", "figures/latents.png"} <= files
        # UMAP/t-SNE only where they are read: the selected method's trial and the oracle's, drawn into their runs after the sweep.
        assert ({"projection.parquet", "figures/projection.png"} <= files) == (run.info.run_name in shown), run.info.run_name
        assert "pipeline" in files and "model" not in files  # every trial's fitted pipeline (musicvae.serving.pipeline), no pickled network
        embedding = pd.read_parquet(client.download_artifacts(run.info.run_id, "embedding.parquet", str(tmp_path)))
        assert len(embedding) == 36 and {"track_id", "cluster", "genre", "z00"} <= set(embedding.columns)
        assert {"latent_active_units", "latent_total_correlation", "trial_seconds"} <= set(run.data.metrics)

    artifacts = {a.path for a in client.list_artifacts(outcome.parent_run_id)}
    assert {"sweep.yaml", "leaderboard.csv", "methods.csv", "leaderboard.txt", "extraction.txt", "selection.csv"} <= artifacts
    # The label-free choice, scored in shared spaces: every rule's score per method, the winner on the parent run.
    selection = pd.read_csv(client.download_artifacts(outcome.parent_run_id, "selection.csv", str(tmp_path)))
    assert set(selection["method"]) == set(outcome.methods["method"])
    assert {"score_combined", "pooled_calinski_harabasz", "pooled_silhouette", "stability", "consensus", "ari"} <= set(selection.columns)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.tags["musicvae.selection_rule"] == "per_input" and parent.data.tags["musicvae.selected"] in set(selection["method"])
    assert {"selection_regret", "selected_stability", "selection_seconds"} <= set(parent.data.metrics)
    assert "Selected by the 'per_input' rule" in parent.data.tags["mlflow.note.content"]  # the run page's description
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on runs
    for run in by_k["6"]:
        assert {"input_silhouette", "input_calinski_harabasz", "resample_stability"} <= set(run.data.metrics)
    assert "figures/metrics_heatmap.png" in {a.path for a in client.list_artifacts(outcome.parent_run_id, "figures")}
    table = outcome.leaderboard
    assert len(table) == 5 and (table["status"] == "FAILED").sum() == len(by_k["36"])
    ok = table[table["status"] == "OK"]
    assert ok["silhouette"].is_monotonic_decreasing  # best first, by the label-free objective


def test_interrupted_sweep_leaves_no_run_running(tmp_path: Path) -> None:
    client, experiment_id = connect(f"sqlite:///{tmp_path / 'm.db'}", "x")
    parent = client.create_run(experiment_id).info.run_id
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    other = client.create_run(experiment_id).info.run_id
    assert close_unfinished_children(client, experiment_id, parent) == 1
    assert client.get_run(child).info.status == "FAILED"
    assert client.get_run(other).info.status == "RUNNING"  # not ours: untouched


def test_resume_deletes_the_runs_of_trials_tune_forgot(tmp_path: Path) -> None:
    client, experiment_id = connect(f"sqlite:///{tmp_path / 'm.db'}", "x")
    parent = client.create_run(experiment_id).info.run_id
    kept, lost = ({"mlflow.parentRunId": parent, "ray.trial_id": trial} for trial in ("aaaa", "bbbb"))
    kept_id = client.create_run(experiment_id, tags=kept).info.run_id
    lost_id = client.create_run(experiment_id, tags=lost).info.run_id
    assert remove_forgotten_children(client, experiment_id, parent, {"aaaa"}) == 1
    assert client.get_run(lost_id).info.lifecycle_stage == "deleted" and client.get_run(kept_id).info.lifecycle_stage == "active"
    assert [r.info.run_id for r in client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")] == [kept_id]


@pytest.mark.slow
@pytest.mark.slow  # a thousand runs in SQLite: about 30 s
def test_closing_and_forgetting_children_page_through_every_run(tmp_path: Path) -> None:
    """More children than one page of MLflow's search results (1000): every one is closed, every forgotten one deleted."""
    from mlflow.entities import RunTag

    from musicvae.tracking import runs as tracking

    client, experiment_id = tracking.connect(f"sqlite:///{tmp_path / 'mlflow.db'}", "paging")
    parent = client.create_run(experiment_id).info.run_id
    for i in range(tracking.PAGE_SIZE + 5):
        run = client.create_run(experiment_id).info.run_id  # tags in one batch: half the SQLite commits of create_run(tags=...)
        client.log_batch(run, tags=[RunTag("mlflow.parentRunId", parent), RunTag("ray.trial_id", f"t{i}")])
    children = f"tags.`mlflow.parentRunId` = '{parent}'"
    assert len(tracking.search_all_runs(client, experiment_id, children)) == tracking.PAGE_SIZE + 5
    assert close_unfinished_children(client, experiment_id, parent) == tracking.PAGE_SIZE + 5
    assert tracking.search_all_runs(client, experiment_id, children + " and attributes.status = 'RUNNING'") == []
    assert remove_forgotten_children(client, experiment_id, parent, {"t0", "t1"}) == tracking.PAGE_SIZE + 3
    assert sorted(r.data.tags["ray.trial_id"] for r in tracking.search_all_runs(client, experiment_id, children)) == ["t0", "t1"]


@pytest.mark.slow
def test_quickstart_demo_runs_from_the_cli(tmp_path: Path) -> None:
    """The README's main job, exactly as a user runs it (in a scratch working directory)."""
    proc = subprocess.run(
        [sys.executable, "-m", "musicvae.cli", "sweep", str(REPO / "sweeps" / "quickstart.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},  # the embedded default, as for a user
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Methods (mean over seeds" in proc.stdout and "mlflow ui --backend-store-uri sqlite:///" in proc.stdout
    last_screen = proc.stdout[proc.stdout.index("Methods (mean over seeds") : proc.stdout.index("Open the MLflow UI")]
    assert max(map(len, last_screen.splitlines())) <= 120, last_screen  # the tables and the choice fit 120 columns (the commands follow whole)
    table = last_screen.splitlines()[2:13]  # the header and the ten methods, one line each
    assert table[0].split() == ["method", "n", "stability", "ARI", "NMI", "s"] and sum("+ kmeans" in r or "+ agglomerative" in r for r in table[1:]) == 10
    assert "Champion: models:/quickstart@champion" in last_screen and "  musicvae assign models:/quickstart@champion MUSIC_DIR" in last_screen
    # Quiet by default (issue 14): our progress bars and the results, no library chatter; make demo adds one line.
    output = proc.stdout + proc.stderr
    assert len(output.splitlines()) <= 59, output
    assert "Extracting features" in proc.stdout and "Trials" in proc.stdout and "10/10" in proc.stdout
    for noise in ("Checkpoint successfully created", "Trial status", "Configuration for experiment", "UserWarning", "INFO", "View detailed results"):
        assert noise not in output, noise
    assert "Selected by the 'per_input' rule" in proc.stdout and "regret" in proc.stdout and "stability" in proc.stdout
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["musicvae"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("musicvae.role") == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 10 and all(r.info.status == "FINISHED" for r in children)
    assert not list((tmp_path / ".musicvae" / "cache" / "trained").glob("*/*"))  # the sweep's shared models are deleted when it ends


class KillOnce(tune.Callback):
    """SIGKILLs the trial's worker process the first time it reports ``epoch``: a real crash, mid-training."""

    def __init__(self, epoch: int):
        self.epoch, self.seen, self.killed = epoch, [], False

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if "epoch" in result:
            self.seen.append((result["pid"], result["epoch"]))
        if result.get("epoch") == self.epoch and not self.killed:
            self.killed = True
            os.kill(result["pid"], signal.SIGKILL)


@pytest.mark.slow
def test_a_crashed_trial_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """A real crash (SIGKILL of the worker) at epoch 5; Tune retries and training continues from epoch 4, not 1."""
    data = three_genres(per_genre=40, n_features=8)
    killer = KillOnce(epoch=5)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        tuner = tune.Tuner(
            tune.with_parameters(tune_trainable, data=data, trials=TrialsConfig(figures=[], checkpoint_every=3), resources=ResourcesConfig()),
            param_space={"model": "vae", "latent_dim": 4, "epochs": 8, "seed": 0},
            run_config=tune.RunConfig(storage_path=str(tmp_path), callbacks=[killer], failure_config=tune.FailureConfig(max_failures=1)),
        )
        result = tuner.fit()[0]
    finally:
        ray.shutdown()
    assert killer.killed and result.error is None
    first_pid = killer.seen[0][0]
    before = [epoch for pid, epoch in killer.seen if pid == first_pid]
    after = [epoch for pid, epoch in killer.seen if pid != first_pid]
    assert before[:5] == [1, 2, 3, 4, 5]
    last_checkpoint = 3 * (before[-1] // 3)  # every 3 epochs: epoch 3, unless Tune had already taken epoch 6
    assert after == list(range(last_checkpoint + 1, 9))  # continued from the checkpoint, not from epoch 1
    assert last_checkpoint >= 3
    assert result.metrics["ari"] > 0.9 and (Path(result.checkpoint.path) / "artifacts" / "embedding.parquet").exists()


class CountCheckpoints(tune.Callback):
    """On every checkpoint Tune registers: how many checkpoint folders the trial has reported, and how many are still on storage."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.reported: dict[str, int] = {}

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        self.reported[trial.trial_id] = self.reported.get(trial.trial_id, 0) + 1
        folder = Path(checkpoint.path).parent
        self.seen.append((self.reported[trial.trial_id], len(list(folder.glob("checkpoint_*")))))


@pytest.mark.slow
def test_no_checkpoint_is_deleted_while_the_sweep_runs_and_only_the_last_is_kept_after(tmp_path: Path) -> None:
    """A driver killed after Tune deleted a checkpoint but before its next experiment snapshot resumed the trial from a
    checkpoint that no longer existed, and the trial failed ("Could not recover from checkpoint"; bench/chaos.py's
    driver fault, under load). With CheckpointConfig(num_to_keep=2) this test fails at the third checkpoint.
    """
    from musicvae.tune.sweep import build_tuner, prune_checkpoints

    data = three_genres(per_genre=30, n_features=6)
    cfg = parse_sweep(
        {
            "name": "keep",
            "space": {"model": "vae", "latent_dim": 2, "epochs": 12, "clusterer": "kmeans"},
            "search": {"sampler": "grid", "max_concurrent_trials": 1},
            "data": {"cache_dir": str(tmp_path / "cache")},  # its own store of trained models: a hit would skip the checkpoints counted
            "trials": {"figures": [], "checkpoint_every": 2},
            "storage_path": str(tmp_path / "ray_results"),
        }
    )
    counter = CountCheckpoints()
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        results = build_tuner(cfg, data, [counter], "keep").fit()
    finally:
        ray.shutdown()
    assert len(counter.seen) == 7  # epochs 2, 4, ..., 12, then the final artifacts
    assert all(on_storage == reported for reported, on_storage in counter.seen), counter.seen
    trial_folder = Path(results[0].checkpoint.path).parent
    assert prune_checkpoints(results) == 6
    assert [p.name for p in trial_folder.glob("checkpoint_*")] == [Path(results[0].checkpoint.path).name]
    assert (Path(results[0].checkpoint.path) / "artifacts" / "embedding.parquet").exists()


class FinalResults(tune.Callback):
    """Every trial's per-epoch results and its last one."""

    def __init__(self) -> None:
        self.epochs: dict[str, int] = {}
        self.last: dict[str, dict] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.epochs[trial.config["clusterer"]] = self.epochs.get(trial.config["clusterer"], 0) + ("epoch" in result and "trial_seconds" not in result)
        self.last[trial.config["clusterer"]] = result


@pytest.mark.slow
def test_trials_that_cluster_one_model_differently_train_it_once(tmp_path: Path) -> None:
    """The grid's three clusterers of one model and seed: the first trains it, the other two read it (musicvae.training.trained_models)."""
    from musicvae.tune.sweep import build_tuner, models_store

    data = three_genres(per_genre=30, n_features=6)
    cfg = parse_sweep(
        {
            "name": "share",
            "data": {"cache_dir": str(tmp_path / "cache")},
            "space": {"model": "vae", "latent_dim": 2, "epochs": 6, "clusterer": ["kmeans", "agglomerative", "dbscan"]},
            "search": {"sampler": "grid", "max_concurrent_trials": 1},  # one after another: the first trains, the others find it
            "trials": {"figures": []},
            "storage_path": str(tmp_path / "ray_results"),
        }
    )
    results = FinalResults()
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        build_tuner(cfg, data, [results], "share").fit()
    finally:
        ray.shutdown()
    assert len(list(Path(models_store(cfg, "share")).glob("*.pt"))) == 1
    shared = {c for c, result in results.last.items() if "fit_seconds" in result["notes"]}
    assert shared == {"agglomerative", "dbscan"}  # the grid's order: kmeans first
    assert len({result["val_loss"] for result in results.last.values()}) == 1  # one model
    assert results.epochs == {"kmeans": 6, "agglomerative": 6, "dbscan": 6}  # a shared model's epochs are replayed to Tune


class SeedResults(tune.Callback):
    """Every trial's per-epoch results by (seed, clusterer), and its last one."""

    def __init__(self) -> None:
        self.epochs: dict[tuple, list[tuple[int, int]]] = {}
        self.last: dict[tuple, dict] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        key = (trial.config["seed"], trial.config["clusterer"])
        if "epoch" in result and "trial_seconds" not in result:
            self.epochs.setdefault(key, []).append((result["pid"], result["epoch"]))
        self.last[key] = result


@pytest.mark.slow
def test_a_methods_seeds_train_together_and_a_crash_resumes_every_one(tmp_path: Path) -> None:
    """The grid's first trial trains seeds 0, 1 and 2 as one vectorised model; SIGKILLed at epoch 5 it resumes all three
    from its epoch-3 checkpoint, and every trial's result is the one an uninterrupted sweep gives."""
    from musicvae.tune.sweep import build_tuner, models_store

    data = three_genres(per_genre=40, n_features=12)  # sizes whose replicas are exact on every CPU met (see tests/test_replicas.py)

    def sweep(name: str, callbacks: list) -> None:
        cfg = parse_sweep(
            {
                "name": name,
                "data": {"cache_dir": str(tmp_path / "cache")},
                "space": {"model": "vae", "latent_dim": 16, "epochs": 8, "clusterer": ["kmeans", "agglomerative"], "seed": [0, 1, 2]},
                "search": {"sampler": "grid", "max_concurrent_trials": 1},
                "trials": {"figures": [], "checkpoint_every": 3, "max_retries": 1},
                "storage_path": str(tmp_path / "ray_results"),
            }
        )
        ray.init(num_cpus=2, include_dashboard=False)
        try:
            build_tuner(cfg, data, callbacks, name).fit()
        finally:
            ray.shutdown()
        assert len(list(Path(models_store(cfg, name)).glob("*.pt"))) == 3 and not list(Path(models_store(cfg, name)).glob("*.claim"))

    killer, crashed, straight = KillOnce(epoch=5), SeedResults(), SeedResults()
    sweep("crashed", [killer, crashed])
    sweep("straight", [straight])

    assert killer.killed and len(crashed.last) == 6 and all(r.get("trial_seconds") for r in crashed.last.values())
    notes = {key: result["notes"]["fit_seconds"] for key, result in crashed.last.items()}
    assert notes.pop((0, "kmeans")).startswith("trained as one vectorised model with seeds 0, 1, 2")  # the grid's first trial
    assert all(note.startswith("trained by another trial as one vectorised model") for note in notes.values())
    seen = crashed.epochs[(0, "kmeans")]
    before = [epoch for pid, epoch in seen if pid == seen[0][0]]
    after = [epoch for pid, epoch in seen if pid != seen[0][0]]
    last_checkpoint = 3 * (before[-1] // 3)  # epoch 3, unless the worker got to checkpoint epoch 6 before the kill landed
    assert before[:5] == [1, 2, 3, 4, 5] and last_checkpoint >= 3 and after == list(range(last_checkpoint + 1, 9))
    for key, result in straight.last.items():
        assert all(result[m] == crashed.last[key][m] for m in ("val_loss", "ari", "silhouette", "input_silhouette")), key


@pytest.mark.slow
def test_a_table_without_labels_and_without_k_runs_and_reports_its_chosen_k(tmp_path: Path, monkeypatch) -> None:
    """No label column, no n_clusters: the sweep searches k over the default range and says which k it chose."""
    from conftest import blobs

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    x, _ = blobs(n_per=40, k=4, d=6, scale=8.0, spread=0.5, seed=4, standardise=False)
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    table.insert(0, "track_id", [f"t{i}" for i in range(len(x))])
    table.to_csv(tmp_path / "unlabelled.csv", index=False)
    raw = {
        "name": "no-labels",
        "data": {"source": {"kind": "table", "path": str(tmp_path / "unlabelled.csv"), "label_column": None}, "cache_dir": str(tmp_path / "cache")},
        "space": {"model": "raw", "clusterer": "kmeans"},  # one seed: the resampled clusterings say how stable each k is
        "search": {"metric": "input_silhouette", "sampler": "grid", "max_concurrent_trials": 2},
        "trials": {"figures": [], "after_sweep_projections": False},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "no-labels"},
        "storage_path": str(tmp_path / "ray_results"),
    }
    outcome = run_sweep(parse_sweep(raw))
    assert sorted(outcome.leaderboard["n_clusters"].unique()) == [2, 3, 4, 5, 6, 7, 8]  # 160 tracks: 2 to sqrt(80)
    assert outcome.selection.oracle is None
    assert "k = 4 chosen\n" in outcome.selection.summary() + "\n" and "label count" not in outcome.selection.summary()
    assert "k = 4 chosen" in outcome.summary()
