"""Sweeps a team can trust, through real Ray, Optuna and MLflow (SQLite, and a real ``mlflow server`` over HTTP).

Failures recorded and not retried, early stopping, several objectives,
fixed points, a SIGKILLed sweep resumed, and a tracking server reached only
over HTTP with its artifacts proxied.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml
from conftest import stop_server, wait_until_healthy
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from musicvae.config.sweep_file import parse_sweep
from musicvae.data.synth import blobs_table
from musicvae.tune.sweep import run_sweep

pytestmark = pytest.mark.slow


def sweep_dict(tmp_path: Path, name: str, space: dict, search: dict, tracking_uri: str | None = None, **extra) -> dict:
    return {
        "name": name,
        "data": {"source": {"kind": "table", "path": str(blobs_table(tmp_path / "blobs.csv"))}, "cache_dir": str(tmp_path / "cache")},
        "space": space,
        "search": search,
        "trials": {"figures": [], "checkpoint_every": 5},
        "tracking": {"uri": tracking_uri or f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": name},
        "storage_path": str(tmp_path / "ray_results"),
        **extra,
    }


def children_of(client: MlflowClient, experiment_id: str, parent: str) -> list:
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'", max_results=1000)


def test_failed_trials_are_recorded_with_their_reason_and_not_retried(tmp_path: Path) -> None:
    """A trial that raises (k = n: its 80 % resamples cannot hold k clusters) and one whose loss goes NaN (lr = 1): both FAILED
    with the reason, once each; the rest finish. (A k above the tracks is refused before any trial: test_sweep_units.)"""
    space = {"model": ["pca", "vae"], "lr": [0.001, 1.0], "n_clusters": [3, 90], "epochs": 10, "latent_dim": 4}
    cfg = parse_sweep(sweep_dict(tmp_path, "failures", space, {"sampler": "grid", "max_concurrent_trials": 2}, trials={"figures": [], "max_retries": 2}))
    outcome = run_sweep(cfg)

    table = outcome.leaderboard.set_index("trial")
    assert len(table) == 6 == cfg.num_samples  # pca x k, and vae x lr x k
    ok = table[table["status"] == "OK"]
    assert sorted(zip(ok["model"], ok["n_clusters"])) == [("pca", 3), ("vae", 3)]
    failed = table[table["status"] == "FAILED"]
    assert len(failed) == 4
    nan = failed[failed["lr"] == 1.0]
    assert len(nan) == 2 and nan["error"].str.startswith("NonFiniteLossError: loss became nan at epoch 1").all()
    too_many = failed[(failed["lr"] != 1.0)]
    assert len(too_many) == 2 and too_many["error"].str.contains("n_samples=72 should be >= n_clusters=90").all()

    client = MlflowClient(outcome.tracking_uri)
    runs = children_of(client, outcome.experiment_id, outcome.parent_run_id)
    assert len(runs) == 6  # one run per trial: nothing was retried into a second run
    for run in runs:
        error = run.data.tags.get("musicvae.error", "")
        assert run.info.status == ("FAILED" if error else "FINISHED")
        if run.data.params.get("lr") == "1.0":
            assert error.startswith("NonFiniteLossError")
            assert "Traceback" in Path(client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path))).read_text()
            # Not retried: training stopped at its first epoch and never started again.
            assert [m.value for m in client.get_metric_history(run.info.run_id, "training_iteration")] in ([], [1.0])
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_trials_failed"] == 4.0


def test_early_stopping_several_objectives_and_fixed_points(tmp_path: Path) -> None:
    """ASHA stops trials (STOPPED, KILLED in MLflow, pruned for Optuna); two objectives give a Pareto front; fixed points run first."""
    space = {"model": "vae", "lr": {"low": 1e-4, "high": 3e-2, "log": True}, "beta": [0.5, 4.0], "epochs": 12, "latent_dim": 4}
    search = {
        "metric": ["silhouette", "val_loss"],
        "sampler": "nsga2",
        "num_samples": 8,
        "max_concurrent_trials": 2,
        "seed": 1,
        "points_to_evaluate": [{"lr": 0.001, "beta": 4.0}, {"lr": 0.0001, "beta": 0.5}],
    }
    scheduler = {"kind": "asha", "grace_period": 2, "reduction_factor": 2}
    cfg = parse_sweep(sweep_dict(tmp_path, "asha", space, search, scheduler=scheduler))
    outcome = run_sweep(cfg)

    table = outcome.leaderboard
    assert len(table) == 8
    stopped = table[table["status"] == "STOPPED"]
    assert len(stopped) >= 1, "ASHA with reduction factor 2 stops some of 8 trials"
    assert stopped["silhouette"].isna().all() and stopped["error"].str.startswith("stopped early at epoch").all()

    client = MlflowClient(outcome.tracking_uri)
    runs = {r.info.run_name: r for r in children_of(client, outcome.experiment_id, outcome.parent_run_id)}
    for trial in stopped["trial"]:
        run = runs[trial]
        assert run.info.status == "KILLED" and "stopped early" in run.data.tags["musicvae.stopped"]
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) < 12
    # The fixed points ran, as given.
    configs = {(float(r.data.params["lr"]), float(r.data.params["beta"])) for r in runs.values()}
    assert {(0.001, 4.0), (0.0001, 0.5)} <= configs

    # The Pareto front: no method on it is beaten on both objectives by another method.
    front = outcome.pareto
    assert front is not None and len(front) >= 1
    methods = outcome.methods.dropna(subset=["silhouette_mean", "val_loss_mean"])
    for _, row in front.iterrows():
        dominated = (methods["silhouette_mean"] >= row["silhouette_mean"]) & (methods["val_loss_mean"] <= row["val_loss_mean"])
        dominated &= (methods["silhouette_mean"] > row["silhouette_mean"]) | (methods["val_loss_mean"] < row["val_loss_mean"])
        assert not dominated.any()
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.params["objective"] == "silhouette,val_loss"
    assert "pareto.csv" in {a.path for a in client.list_artifacts(outcome.parent_run_id)}


def test_a_killed_sweep_resumes_without_losing_or_repeating_anything(tmp_path: Path) -> None:
    """SIGKILL the whole sweep (driver and Ray) after some trials finished; --resume finishes the budget in the same parent run."""
    space = {"model": "vae", "lr": {"low": 1e-4, "high": 1e-2, "log": True}, "latent_dim": [2, 4, 8], "epochs": 60}
    raw = sweep_dict(tmp_path, "resumable", space, {"sampler": "tpe", "num_samples": 6, "max_concurrent_trials": 2, "seed": 0})
    sweep_file = tmp_path / "resumable.yaml"
    sweep_file.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    command = [sys.executable, "-m", "musicvae.cli", "sweep"]
    client = MlflowClient(raw["tracking"]["uri"])

    proc = subprocess.Popen(
        [*command, str(sweep_file)], cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        finished_before: set[str] = set()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            experiment = client.get_experiment_by_name("resumable")
            if experiment is not None:
                runs = client.search_runs([experiment.experiment_id], filter_string="tags.`musicvae.role` = 'trial'")
                finished_before = {r.info.run_name for r in runs if r.info.status == "FINISHED"}
                if len(finished_before) >= 2:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, "the sweep ended before it could be killed:\n" + (proc.stdout.read() if proc.stdout else "")
        assert 2 <= len(finished_before) < 6
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray processes it started: a hard crash, no clean-up
        proc.wait()

    resumed = subprocess.run(
        [*command, "--resume", "resumable", "--storage", str(tmp_path / "ray_results")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout

    experiment = client.get_experiment_by_name("resumable")
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`musicvae.role` = 'sweep'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"  # the same parent, finished; no second one
    children = children_of(client, experiment.experiment_id, parents[0].info.run_id)
    assert sorted(r.info.status for r in children) == ["FINISHED"] * 6  # the budget, each trial once
    assert len({r.data.tags["ray.trial_id"] for r in children}) == 6
    assert finished_before <= {r.info.run_name for r in children}  # what finished before the crash is kept, not rerun

    leaderboard = pd.read_csv(client.download_artifacts(parents[0].info.run_id, "leaderboard.csv", str(tmp_path)))
    assert (leaderboard["status"] == "OK").sum() == 6

    # Optuna kept its history: the study holds all six trials, those told before the crash included.
    run_dir = next((tmp_path / "ray_results").glob("resumable-*"))
    # One file per session, named by its start time; Tune re-syncs them all at the end, so mtimes tie.
    state = pickle.loads(max(run_dir.glob("searcher-state-*.pkl")).read_bytes())
    study = state["_ot_study"]
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real ``mlflow server`` on loopback: SQLite backend, artifacts proxied into a folder; stopped by PID."""
    port = free_port()
    artifacts = tmp_path / "server-artifacts"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(artifacts)],
        cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "server.log", "w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, tmp_path / "server.log")
        yield url, artifacts
    finally:
        stop_server(server)


def test_a_sweep_logs_to_a_tracking_server_over_http(tmp_path: Path, mlflow_server) -> None:
    url, artifact_root = mlflow_server
    space = {"model": ["pca", "vae"], "latent_dim": [2, 4], "epochs": 8, "seed": [0, 1], "n_clusters": 3}  # k fixed: the grid stays 8 trials
    raw = sweep_dict(tmp_path, "over-http", space, {"sampler": "grid", "max_concurrent_trials": 2}, tracking_uri=url)
    raw["trials"] = {"figures": ["umap", "disentanglement"], "figure_points": 100}
    outcome = run_sweep(parse_sweep(raw))
    assert outcome.tracking_uri == url

    # Everything is read back through the server's REST API, as the MLflow UI does.
    api = f"{url}/api/2.0/mlflow"
    experiment = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": "over-http"}, timeout=10).json()["experiment"]
    runs = requests.post(f"{api}/runs/search", json={"experiment_ids": [experiment["experiment_id"]], "max_results": 100}, timeout=10).json()["runs"]
    tags = [{t["key"]: t["value"] for t in run["data"].get("tags", [])} for run in runs]
    parents = [run for run, t in zip(runs, tags) if t.get("musicvae.role") == "sweep"]
    children = [run for run, t in zip(runs, tags) if t.get("mlflow.parentRunId") == outcome.parent_run_id]
    assert len(parents) == 1 and parents[0]["info"]["run_id"] == outcome.parent_run_id
    assert len(children) == 8 == len(runs) - 1
    for child in children:
        assert child["info"]["status"] == "FINISHED"
        metrics = {m["key"]: m["value"] for m in child["data"]["metrics"]}
        assert {"silhouette", "ari", "nmi", "purity", "trial_seconds"} <= set(metrics)
        assert child["info"]["artifact_uri"].startswith("mlflow-artifacts:")  # proxied: the client never touches the store
        run_id = child["info"]["run_id"]
        figure = requests.get(f"{url}/get-artifact", params={"path": "figures/projection.png", "run_uuid": run_id}, timeout=30)
        assert figure.ok and figure.content[:8] == b"\x89PNG\r\n\x1a\n"
        embedding = requests.get(f"{url}/get-artifact", params={"path": "embedding.parquet", "run_uuid": run_id}, timeout=30)
        path = tmp_path / f"{run_id}.parquet"
        path.write_bytes(embedding.content)
        assert len(pd.read_parquet(path)) == 90
    vae = [c for c in children if any(p["key"] == "model" and p["value"] == "vae" for p in c["data"]["params"])]
    assert len(vae) == 4
    history = requests.get(f"{api}/metrics/get-history", params={"run_id": vae[0]["info"]["run_id"], "metric_key": "val_loss"}, timeout=10).json()
    assert len(history["metrics"]) >= 8  # one point per epoch, and the final value
    model = requests.get(f"{url}/get-artifact", params={"path": "pipeline/MLmodel", "run_uuid": vae[0]["info"]["run_id"]}, timeout=10)
    assert model.ok and "loader_module: musicvae.serving.pipeline" in model.text and "python_model" not in model.text

    parent_files = requests.get(f"{api}/artifacts/list", params={"run_id": outcome.parent_run_id}, timeout=10).json()["files"]
    assert {"sweep.yaml", "leaderboard.csv", "methods.csv", "leaderboard.txt", "figures"} <= {f["path"] for f in parent_files}
    # The artifacts really went through the server into its artifact store.
    assert len(list(artifact_root.rglob("embedding.parquet"))) == 8


def test_sync_re_logs_what_mlflow_lost_and_only_once(tmp_path: Path) -> None:
    """``musicvae sync``: a child run lost from MLflow and one left RUNNING (a tracking outage) come back from Tune's state; a second sync logs nothing."""
    space = {"model": ["pca", "vae"], "epochs": 6, "latent_dim": 3, "n_clusters": 3}
    cfg = parse_sweep(sweep_dict(tmp_path, "sync", space, {"sampler": "grid", "max_concurrent_trials": 2}, trials={"figures": [], "checkpoint_every": 2}))
    outcome = run_sweep(cfg)
    client = MlflowClient(outcome.tracking_uri)
    before = {r.data.tags["ray.trial_id"]: r for r in children_of(client, outcome.experiment_id, outcome.parent_run_id)}
    vae, pca = (next(r for r in before.values() if r.data.params["model"] == m) for m in ("vae", "pca"))
    vae_history = [(m.step, m.value) for m in client.get_metric_history(vae.info.run_id, "train_loss")]
    assert len(vae_history) == 6
    client.delete_run(vae.info.run_id)  # as if never logged
    client.update_run(pca.info.run_id, status="RUNNING")  # as if its completion never arrived

    def sync() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "musicvae.cli", "sync", "sync", "--storage", str(tmp_path / "ray_results")], capture_output=True, text=True, timeout=300
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = sync()
    assert "1 runs created" in first and "2 runs completed" in first, first  # the lost run, and the one left RUNNING
    after = {r.data.tags["ray.trial_id"]: r for r in children_of(client, outcome.experiment_id, outcome.parent_run_id)}
    assert sorted(after) == sorted(before) and all(r.info.status == "FINISHED" for r in after.values())
    restored = after[vae.data.tags["ray.trial_id"]]
    assert restored.info.run_id != vae.info.run_id and restored.data.params == vae.data.params
    assert sorted((m.step, m.value) for m in client.get_metric_history(restored.info.run_id, "train_loss")) == sorted(vae_history)
    assert {a.path for a in client.list_artifacts(restored.info.run_id)} >= {"embedding.parquet", "latents.json", "pipeline"}
    assert restored.data.metrics["silhouette"] == vae.data.metrics["silhouette"]
    assert "0 runs created, 0 metric values, 0 runs completed" in sync()  # idempotent
