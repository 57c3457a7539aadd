"""An MLflow tracking server for a team: PostgreSQL for runs and metrics, a proxied artifact store.

``musicvae tracking-server`` starts it on loopback. Without
``--backend-store-uri`` it runs its own PostgreSQL (Debian's package:
``initdb``/``pg_ctl``) in ``<data>/postgres``, so one command gives a server
that many concurrent sweeps can write to (SQLite serialises writers; a
PostgreSQL store does not). Artifacts go to ``<data>/artifacts`` or any
``--artifacts-destination`` MLflow accepts (``s3://bucket/mlflow`` on a
cluster); clients reach them through the server (``mlflow-artifacts:``), so
they need no credentials for the store.

Both servers bind to 127.0.0.1: reach them from elsewhere through an SSH
tunnel (``ray dashboard``-style port forwarding), never a public port.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

POSTGRES_USER = "postgres"  # the OS account PostgreSQL runs as when we are root (initdb refuses root)
DATABASE = "mlflow"


def postgres_binary(name: str) -> str:
    """``initdb``/``pg_ctl`` from PATH, else from Debian's versioned folder (which is not on PATH)."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise FileNotFoundError(f"PostgreSQL's {name} not found: install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or pass --backend-store-uri")
    return found


def _as_postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", POSTGRES_USER, "--", *command] if os.geteuid() == 0 else command


@dataclass
class LocalPostgres:
    """A PostgreSQL cluster in ``directory``, listening on 127.0.0.1:``port`` only, trusting local connections."""

    directory: Path
    port: int

    @property
    def uri(self) -> str:
        user = POSTGRES_USER if os.geteuid() == 0 else os.environ.get("USER", POSTGRES_USER)
        return f"postgresql://{user}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(_as_postgres_user(command), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        data = self.directory / "data"
        if not (data / "PG_VERSION").exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.directory, POSTGRES_USER)
            user = POSTGRES_USER if os.geteuid() == 0 else os.environ.get("USER", POSTGRES_USER)
            self._run([postgres_binary("initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8"])
        # Unix socket in the data folder and TCP on loopback only: nothing listens publicly.
        options = f"-h 127.0.0.1 -p {self.port} -k {data}"
        self._run([postgres_binary("pg_ctl"), "-D", str(data), "-l", str(self.directory / "postgres.log"), "-o", options, "-w", "-t", "60", "start"])
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        # CREATE DATABASE cannot run in a transaction, hence autocommit.
        with psycopg.connect(self.uri.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
            if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                connection.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        data = self.directory / "data"
        if (data / "postmaster.pid").exists():
            self._run([postgres_binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])


def mlflow_server_command(backend_store_uri: str, artifacts: str, host: str, port: int, workers: int = 1) -> list[str]:
    """``mlflow server`` with artifact proxying: clients log artifacts through it, not to the store directly."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", artifacts,
        "--serve-artifacts",
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip


def serve(data: Path, host: str, port: int, postgres_port: int, backend_store_uri: str | None, artifacts: str | None) -> int:
    """Run until SIGINT/SIGTERM; then stop MLflow and the PostgreSQL this started. Returns MLflow's exit code."""
    data = data.resolve()
    postgres = None
    if backend_store_uri is None:
        postgres = LocalPostgres(data / "postgres", postgres_port)
        postgres.start()
        backend_store_uri = postgres.uri
    artifacts = artifacts or str(data / "artifacts")
    # Its own process group: MLflow runs its web workers as children, and all of them must stop.
    server = subprocess.Popen(mlflow_server_command(backend_store_uri, artifacts, host, port), start_new_session=True)
    stopping = False

    def terminate() -> None:
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"MLflow tracking server: http://{host}:{port}  (backend {backend_store_uri}, artifacts {artifacts})", flush=True)
    print(f"Sweeps log to it with: MLFLOW_TRACKING_URI=http://{host}:{port} musicvae sweep FILE", flush=True)
    try:
        while server.poll() is None:
            time.sleep(0.5)
    finally:
        terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        if postgres is not None:
            postgres.stop()
    return 0 if stopping else server.returncode
