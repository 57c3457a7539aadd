"""Fault injection: real sweeps on a real two-node Ray cluster, each hit by one fault at a random moment, then checked.

    python bench/chaos.py                       # 4 runs of each fault kind (about half an hour on 2 cores)
    python bench/chaos.py --runs 1              # one of each: the slow test in CI
    python bench/chaos.py --faults node,tracking --runs 2 --seed 3

Everything is on loopback and bounded in time. One cluster (``musicvae.tune.localcluster``:
a head and a worker node, one CPU each, token authentication on) and one real
``mlflow server`` (SQLite, proxied artifacts) serve every run. Each run is a
new sweep driven by ``musicvae sweep`` in a process of its own, hit once,
when its first trial is reporting plus a random delay, by one of:

    node      SIGKILL of the worker node's process group (its trials restart on the head)
    actor     SIGKILL of one trial's worker process
    driver    SIGKILL of the sweep's driver, then ``musicvae sweep --resume``
    tracking  the tracking server stopped for 20-30 s, then started on the same port and store
    disk      the sweep's storage (a small tmpfs) full for 5-15 s; ``--resume`` if the sweep gave up

and then checked against MLflow and Tune's state (:func:`violations`). It prints a
row per fault kind and a last line ``chaos: N runs, V violations``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import requests
import yaml
from mlflow.tracking import MlflowClient

from musicvae.data.synth import blobs_table
from musicvae.tracking.runs import ERROR_TAG, ROLE_TAG, search_all_runs
from musicvae.tune.localcluster import LocalCluster, free_port

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
FAULTS = ("node", "actor", "driver", "tracking", "disk")
LATENT_DIMS = [2, 3, 4, 5]  # the budget: one trial per value
RUN_TIMEOUT = 900  # seconds a run may take, faults and resumes included, before it counts as a violation


@dataclass
class TrackingServer:
    """``mlflow server`` on a fixed port and store, so it can be stopped and started again as the same server."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        command += ["--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}", "--artifacts-destination", str(self.root / "artifacts")]
        log = (self.root / "server.log").open("a")
        self.process = subprocess.Popen(command, cwd=self.root, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not _healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{(self.root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM (a server taken down for maintenance), SIGKILL if it lingers."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=5).ok
    except requests.RequestException:
        return False


@contextlib.contextmanager
def tmpfs(path: Path, megabytes: int) -> Iterator[bool]:
    """A tmpfs of ``megabytes`` at ``path`` (True), or a plain folder (False) where this process may not mount (not root)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> Path:
    """Take every free byte of the filesystem under ``path``: the next write there fails with ENOSPC."""
    filler = path / ".chaos-filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for block in (1 << 20, 4096, 1):  # megabytes, then pages, then the last bytes
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * block):
                    pass
    finally:
        os.close(fd)
    return filler


@dataclass
class Harness:
    root: Path
    cluster: LocalCluster
    server: TrackingServer
    storage: Path  # a small tmpfs when we may mount one
    disk_fault: bool
    epochs: int
    rng: random.Random

    def sweep_file(self, name: str) -> Path:
        sweep = {
            "name": name,
            "data": {"source": {"kind": "table", "path": str(self.root / "blobs.csv")}, "cache_dir": str(self.root / "cache")},
            "space": {
                "model": "vae",
                "latent_dim": LATENT_DIMS,
                "epochs": self.epochs,
                "batch_size": 16,
                "n_clusters": 3,
            },  # k fixed: one trial per latent size
            "search": {"sampler": "grid", "max_concurrent_trials": 2},
            "trials": {"figures": [], "checkpoint_every": 10, "max_retries": 3},
            "tracking": {"uri": self.server.url, "experiment": name},
            "storage_path": str(self.storage),
        }
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump(sweep))
        return path

    def driver(self, args: list[str], name: str) -> subprocess.Popen:
        log = (self.root / f"{name}.log").open("a")
        command = [sys.executable, "-m", "musicvae.cli", "sweep", *args, "--address", self.cluster.address]
        return subprocess.Popen(command, env=self.cluster.env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)

    def ensure_worker(self) -> None:
        """Two live nodes before each run (a node fault leaves one)."""
        alive = [n for n in self.cluster.nodes if n.process.poll() is None]
        self.cluster.nodes[:] = alive
        if len(alive) < 2:
            self.cluster.add_node("worker_node", cpus=1)

    def run(self, fault: str, index: int) -> tuple[bool, list[str]]:
        """One sweep, one fault; returns whether the fault was injected, and the violations found."""
        self.ensure_worker()
        name = f"chaos-{fault}-{index}"
        driver = self.driver([str(self.sweep_file(name))], name)
        client = MlflowClient(self.server.url)
        deadline = time.monotonic() + RUN_TIMEOUT
        injected = False
        try:
            if not _wait(lambda: _reporting(client, name) or driver.poll() is not None, deadline):
                return False, ["no trial started in time"]
            if driver.poll() is None:
                # A random moment mid-sweep; for a worker, early in its trial: a run's 4 trials took 13 s in all
                # once its workers were warm, and a later moment found the sweep over (no fault injected).
                time.sleep(self.rng.uniform(0, 3 if fault == "actor" else 12))
                injected = self.inject(fault, driver, name)
            if not _wait(lambda: driver.poll() is not None, deadline):
                return injected, ["the sweep did not end in time"]
            if fault in ("driver", "disk") and (driver.returncode != 0 or _unfinished(_run_path(self.storage, name))):
                resumed = self.driver(["--resume", name, "--storage", str(self.storage)], name)
                if not _wait(lambda: resumed.poll() is not None, deadline):
                    resumed.kill()
                    return injected, ["the resumed sweep did not end in time"]
            problems = violations(client, name, _run_path(self.storage, name), self.epochs, exactly_once=fault == "tracking")
            if problems:  # what the sweep itself said last
                problems.append(f"sweep exit code {driver.returncode}; its log ends: " + " | ".join(_tail(self.root / f"{name}.log")))
            return injected, problems
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
            if self.server.process is None:
                self.server.start()

    def _trial_workers(self) -> list[psutil.Process]:
        """The trial worker processes of this cluster (each node runs in a session of its own)."""
        nodes = {n.process.pid for n in self.cluster.nodes}
        return [
            p for p in psutil.process_iter(["cmdline"])
            if " ".join(p.info["cmdline"] or []).startswith("ray::ImplicitFunc") and nodes & {q.pid for q in _parents(p)}
        ]  # fmt: skip

    def inject(self, fault: str, driver: subprocess.Popen, name: str) -> bool:
        if fault == "node":
            self.cluster.nodes[1].kill()
        elif fault == "actor":
            # A trial's worker, as soon as there is one (between two trials there may be none for a moment).
            workers: list[psutil.Process] = []

            def seen() -> bool:
                workers[:] = self._trial_workers()
                return bool(workers) or driver.poll() is not None

            _wait(seen, time.monotonic() + RUN_TIMEOUT, poll=0.2)
            if not workers:
                return False
            with contextlib.suppress(psutil.NoSuchProcess):
                self.rng.choice(workers).send_signal(signal.SIGKILL)
        elif fault == "driver":
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
        elif fault == "tracking":
            self.server.stop()
            time.sleep(self.rng.uniform(20, 30))
            self.server.start()
        elif fault == "disk":
            if not self.disk_fault:
                return False
            filler = fill(self.storage)
            time.sleep(self.rng.uniform(5, 15))
            filler.unlink()
        return True


def _parents(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.parents()
    except psutil.NoSuchProcess:
        return []


def _wait(condition, deadline: float, poll: float = 1.0) -> bool:
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return False


def _reporting(client: MlflowClient, experiment: str) -> bool:
    """A trial has sent its first result (its run carries the node it runs on)."""
    try:
        found = client.get_experiment_by_name(experiment)
        runs = search_all_runs(client, found.experiment_id, f"tags.`{ROLE_TAG}` = 'trial'") if found else []
    except Exception:  # noqa: BLE001 - the server may be busy; ask again
        return False
    return any("ray.node_id" in r.data.tags for r in runs)


def _tail(log: Path, lines: int = 4) -> list[str]:
    return [line.strip()[:300] for line in log.read_text(errors="replace").splitlines() if line.strip()][-lines:]


def _unfinished(run_path: Path | None) -> bool:
    """Tune's state holds a trial that did not end (or gave up): what ``--resume`` continues."""
    from ray.tune import ExperimentAnalysis

    try:
        return run_path is None or any(t.status != "TERMINATED" for t in ExperimentAnalysis(str(run_path)).trials)
    except ValueError:  # a state file cut short by the full disk (JSONDecodeError): let --resume show what it makes of it
        return True


def _run_path(storage: Path, name: str) -> Path | None:
    runs = sorted(storage.glob(f"{name}-*"))
    return runs[-1] if runs else None


def violations(client: MlflowClient, name: str, run_path: Path | None, epochs: int, exactly_once: bool = False) -> list[str]:
    """What is wrong with a finished sweep: the invariants of a sweep that lost nothing and doubled nothing.

    Every epoch's loss is in MLflow; ``exactly_once`` (no trial restarted, as
    in a tracking outage) also wants each epoch logged once: a write retried
    after it had landed would show twice.
    """
    from ray.tune import ExperimentAnalysis

    found = client.get_experiment_by_name(name)
    if found is None or run_path is None:
        return ["no experiment or no Tune run folder"]
    problems = []
    parents = search_all_runs(client, found.experiment_id, f"tags.`{ROLE_TAG}` = 'sweep'")
    if len(parents) != 1 or parents[0].info.status != "FINISHED":
        problems.append(f"parent runs {[p.info.status for p in parents]} (want one FINISHED)")
    children = search_all_runs(client, found.experiment_id, f"tags.`{ROLE_TAG}` = 'trial'")
    by_config: dict[str, list] = {}
    for run in children:
        by_config.setdefault(run.data.params.get("latent_dim", "?"), []).append(run)
    for dim in map(str, LATENT_DIMS):
        runs = by_config.pop(dim, [])
        if len(runs) != 1:
            problems.append(f"latent_dim {dim}: {len(runs)} runs {[r.info.status for r in runs]} (want exactly one)")
            continue
        run = runs[0]
        if run.info.status != "FINISHED":  # these trials cannot fail on their own: FAILED is a fault's
            problems.append(f"latent_dim {dim}: {run.info.status} ({run.data.tags.get(ERROR_TAG, 'no reason')})")
            continue
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        if not {"embedding.parquet", "pipeline"} <= artifacts:
            problems.append(f"latent_dim {dim}: artifacts {sorted(artifacts)} lack the embedding or the pipeline")
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")]
        if set(steps) != set(range(1, epochs + 1)) or (exactly_once and len(steps) != epochs):
            problems.append(f"latent_dim {dim}: train_loss logged at {len(set(steps))} distinct epochs of {epochs}, {len(steps)} values")
    problems += [f"runs of no configuration of the budget: latent_dim {dim}" for dim in by_config]

    trials = ExperimentAnalysis(str(run_path)).trials
    if sorted(t.trial_id for t in trials) != sorted(r.data.tags.get("ray.trial_id", "") for r in children):
        problems.append(f"Tune's trials {sorted(t.trial_id for t in trials)} are not MLflow's runs")
    problems += [f"Tune trial {t} is {t.status}" for t in trials if t.status != "TERMINATED"]

    if len(parents) == 1:
        with tempfile.TemporaryDirectory() as directory:
            try:
                board = pd.read_csv(client.download_artifacts(parents[0].info.run_id, "leaderboard.csv", directory))
            except Exception as exc:  # noqa: BLE001
                return [*problems, f"no leaderboard on the parent run ({exc})"]
        logged = {r.info.run_name: r.data.metrics.get("input_silhouette") for r in children}
        shown = dict(zip(board["trial"], board["input_silhouette"]))
        if set(shown) != set(logged) or any(not np.isclose(shown[t], logged[t], equal_nan=True) for t in shown):
            problems.append(f"the leaderboard {shown} is not what MLflow holds {logged}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="runs of each fault kind (default 4)")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, of {', '.join(FAULTS)}")
    # 600: trials got faster (MLflow writes batched, seeds and experts cheaper); at 150 and then 250 epochs a sweep could end
    # before its fault landed, or (disk) while the disk was still full, leaving Tune's last state file cut short.
    parser.add_argument("--epochs", type=int, default=600, help="epochs per trial: long enough for a 30 s outage mid-sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the table (and each violation) to this JSON file")
    parser.add_argument("--keep", help="keep logs, stores and Tune state in this folder (default: a temporary one, removed)")
    args = parser.parse_args()
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")

    root = Path(args.keep or tempfile.mkdtemp(prefix="musicvae-chaos-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    blobs_table(root / "blobs.csv")
    rows, details = [], []
    start = time.monotonic()
    with tmpfs(root / "storage", 256) as mounted, LocalCluster(root / "ray-logs") as cluster:
        server = TrackingServer(root)
        server.start()
        try:
            cluster.add_node("head_node", cpus=1)
            harness = Harness(root, cluster, server, root / "storage", mounted, args.epochs, random.Random(args.seed))
            for fault in faults:
                injected = bad = 0
                for index in range(args.runs):
                    began = time.monotonic()
                    hit, problems = harness.run(fault, index)
                    injected += hit
                    bad += len(problems)
                    details += [f"{fault} run {index}: {p}" for p in problems]
                    print(
                        f"  {fault} run {index}: {'fault injected' if hit else 'no fault injected'}, "
                        f"{len(problems)} violation(s), {time.monotonic() - began:.0f} s",
                        flush=True,
                    )
                note = "" if fault != "disk" or mounted else " (no tmpfs: mounting needs root)"
                rows.append({"fault": fault + note, "runs": args.runs, "faults injected": injected, "violations": bad})
        finally:
            server.stop()
    print()
    print(pd.DataFrame(rows).to_string(index=False))
    for line in details:
        print("  " + line)
    total = sum(r["violations"] for r in rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "violations": details, "disk_mounted": mounted}, indent=1))
    print(f"({time.monotonic() - start:.0f} s; logs in {root})" if args.keep else f"({time.monotonic() - start:.0f} s)")
    print(f"chaos: {sum(r['runs'] for r in rows)} runs, {total} violations")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
