"""A real two-node Ray cluster on this machine, a sweep submitted with ``ray job submit``, MLflow on PostgreSQL.

The head and a worker node are separate ``ray start`` processes with one CPU
each, so two concurrent trials must spread over both. Token authentication
is on. The sweep logs over HTTP to ``musicvae tracking-server`` (a real
``mlflow server`` on a real PostgreSQL). Half-way, the worker node is
SIGKILLed, as a machine is lost: its trial is retried on the head and the
sweep finishes with every run and artifact on the server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
import yaml
from conftest import wait_until_healthy
from mlflow.tracking import MlflowClient

from musicvae.data.synth import blobs_table
from musicvae.tracking.server import postgres_binary
from musicvae.tune.localcluster import LocalCluster, free_port

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture
def shared_dir():
    """A folder every OS user can enter: PostgreSQL runs as 'postgres' when the tests run as root (pytest's tmp is 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="musicvae-multinode-"))
    directory.chmod(0o755)
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=False)


@pytest.fixture
def tracking_server(shared_dir: Path):
    try:
        postgres_binary("pg_ctl")
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (.ci/run installs it)")
    port = free_port()
    log = (shared_dir / "tracking-server.log").open("w")
    command = [
        sys.executable,
        "-m",
        "musicvae.cli",
        "tracking-server",
        "--data",
        str(shared_dir / "tracking"),
        "--port",
        str(port),
        "--postgres-port",
        str(free_port()),
    ]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server, shared_dir / "tracking-server.log")
        yield url, shared_dir / "tracking"
    finally:
        server.send_signal(signal.SIGTERM)  # it stops MLflow and its PostgreSQL
        server.wait(timeout=60)
    assert server.returncode == 0, (shared_dir / "tracking-server.log").read_text()[-3000:]


def wait_for(condition, timeout: float, what: str, poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sweep_spreads_over_two_nodes_and_survives_losing_one(shared_dir: Path, tracking_server) -> None:
    url, tracking_data = tracking_server
    budget = 6
    sweep = {
        "name": "two-nodes",
        "data": {"source": {"kind": "table", "path": str(blobs_table(shared_dir / "blobs.csv"))}, "cache_dir": str(shared_dir / "cache")},
        "space": {"model": "vae", "latent_dim": [2, 3, 4, 5, 6, 8], "epochs": 400, "batch_size": 16, "n_clusters": 3},
        "search": {"sampler": "grid", "max_concurrent_trials": 2},
        "trials": {"figures": ["disentanglement"], "checkpoint_every": 50, "max_retries": 3},
        "tracking": {"uri": url, "experiment": "two-nodes"},
        "storage_path": str(shared_dir / "ray_results"),  # shared storage: on one machine, one folder
    }
    sweep_file = shared_dir / "two-nodes.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep))
    client = MlflowClient(url)

    with LocalCluster(shared_dir / "ray-logs", dashboard=True) as cluster:
        cluster.add_node("head_node", cpus=1)
        worker = cluster.add_node("worker_node", cpus=1)
        ids = node_ids(cluster)
        command = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", cluster.dashboard_url, "--working-dir", str(REPO)]
        command += ["--no-wait", "--submission-id", "two-nodes", "--", sys.executable, "-m", "musicvae.cli", "sweep", str(sweep_file)]
        for _ in range(60):  # the head's job agent takes a while to come up after the node does
            submit = subprocess.run(command, env=cluster.env, capture_output=True, text=True, timeout=300)
            if "No available agent" not in submit.stderr + submit.stdout:
                break
            time.sleep(2)
        assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]

        # Without the cluster's token, the job server refuses us: authentication is on.
        anonymous = requests.get(f"{cluster.dashboard_url}/api/jobs/", timeout=10)
        assert anonymous.status_code in (401, 403)

        def trials() -> list:
            experiment = client.get_experiment_by_name("two-nodes")
            if experiment is None:
                return []
            return client.search_runs([experiment.experiment_id], filter_string="tags.`musicvae.role` = 'trial'")

        def nodes_in_use() -> set[str]:
            return {r.data.tags["ray.node_id"] for r in trials() if "ray.node_id" in r.data.tags}

        # Both nodes take trials (one CPU each, two at a time); once one trial has finished, lose the worker.
        try:
            wait_for(lambda: nodes_in_use() == set(ids.values()), 600, "trials on both nodes")
        except AssertionError:
            print(job_logs(cluster)[-5000:])  # shown by pytest with the failure
            raise
        wait_for(lambda: any(r.info.status == "FINISHED" for r in trials()), 600, "a finished trial")
        # Far from its end: a trial past its last epoch is scored and checkpointed on the worker while its run still
        # says RUNNING, and a kill then loses nothing to restart (the race behind one CI failure of this test).
        on_worker = wait_for(
            lambda: [
                r
                for r in trials()
                if r.info.status == "RUNNING" and r.data.tags.get("ray.node_id") == ids["worker_node"] and r.data.metrics.get("epoch", 0) <= 250
            ],
            600,
            "a trial running on the worker, at most 250 of its 400 epochs done",
        )
        worker.kill()

        status = wait_for(lambda: job_status(cluster) in ("SUCCEEDED", "FAILED", "STOPPED") and job_status(cluster), 900, "the job to end", poll=3)
        logs = job_logs(cluster)
        assert status == "SUCCEEDED", logs[-5000:]

    runs = trials()
    assert len(runs) == budget and all(r.info.status == "FINISHED" for r in runs), ([(r.info.run_name, r.info.status) for r in runs], logs[-5000:])
    lost = {r.info.run_id for r in on_worker}
    retried = [r for r in runs if r.info.run_id in lost]
    assert retried and all(int(r.data.tags.get("musicvae.restarts", "0")) >= 1 for r in retried)
    assert all(r.data.tags["ray.node_id"] == ids["head_node"] for r in retried)  # finished on the surviving node

    # Nothing lost: every trial's metrics and artifacts are on the server, and runs live in PostgreSQL.
    for run in runs:
        assert {"silhouette", "ari", "trial_seconds"} <= set(run.data.metrics)
        embedding = pd.read_parquet(client.download_artifacts(run.info.run_id, "embedding.parquet", tempfile.mkdtemp()))
        assert len(embedding) == 90
    assert len(list((tracking_data / "artifacts").rglob("embedding.parquet"))) == budget
    parent = client.search_runs([runs[0].info.experiment_id], filter_string="tags.`musicvae.role` = 'sweep'")
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    assert "Champion: models:/two-nodes@champion" in logs and "If interrupted, continue with" in logs

    # The champion, registered in the server's PostgreSQL, loads through MLflow and gives its trial's clusters back.
    mlflow.set_tracking_uri(url)
    version = client.get_model_version_by_alias("two-nodes", "champion")
    champion = mlflow.pyfunc.load_model("models:/two-nodes@champion")
    table = pd.read_csv(shared_dir / "blobs.csv")
    trial = pd.read_parquet(client.download_artifacts(version.run_id, "embedding.parquet", tempfile.mkdtemp()))
    assert champion.predict(table)["cluster"].tolist() == trial["cluster"].tolist()


def node_ids(cluster: LocalCluster) -> dict[str, str]:
    """Each node's Ray id by the custom resource that names it, from ``ray list nodes`` (with the cluster's token)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "list", "nodes", "--address", cluster.dashboard_url, "--detail", "--format", "json"],
        env=cluster.env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    nodes = json.loads(done.stdout)
    return {name: n["node_id"] for n in nodes for name in ("head_node", "worker_node") if name in n.get("resources_total", {})}


def job_logs(cluster: LocalCluster) -> str:
    ray = str(Path(sys.executable).parent / "ray")
    return subprocess.run(
        [ray, "job", "logs", "--address", cluster.dashboard_url, "two-nodes"], env=cluster.env, capture_output=True, text=True, timeout=60
    ).stdout


def job_status(cluster: LocalCluster) -> str:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "job", "status", "--address", cluster.dashboard_url, "two-nodes"],
        env=cluster.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # Ray's CLI says e.g. "Job 'two-nodes' succeeded" (on stderr) for a job that ended.
    said = (done.stdout + done.stderr).lower()
    return next((status.upper() for status in ("succeeded", "failed", "stopped") if f"job 'two-nodes' {status}" in said), "")
