"""The Tune callback that mirrors every trial into a nested child run of the sweep's parent run.

All MLflow writes happen in the driver, through the client API with explicit
run ids (no global "active run"), so concurrent trials can never write into
each other's runs and a SQLite store has a single writer.

Ray ships ``MLflowLoggerCallback``, but it writes every metric of every result
with its own call (about 20 round trips per epoch here, each a SQLite commit),
logs Ray's bookkeeping fields as metrics and cannot nest runs under a parent.
:class:`MLflowTrialCallback` does the same job with one ``log_batch`` per run
every few seconds: a trial's per-epoch losses are gathered for
:data:`FLUSH_SECONDS` and logged together, its final result at once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from ray import tune

from musicvae.tracking.runs import ERROR_TAG, RESTARTS_TAG, ROLE_TAG, STOPPED_TAG, SWEEP_TAG, search_all_runs

# Keys of a Tune result that are ours to log (Ray adds its own bookkeeping).
RAY_FIELDS = frozenset(
    {
        "failed",
        "training_iteration",
        "time_this_iter_s",
        "timestamp",
        "time_since_restore",
        "iterations_since_restore",
        "pid",
        "date",
        "node_ip",
        "hostname",
        "done",
        "trial_id",
        "experiment_tag",
    }
)


# A run's per-epoch metrics wait at most this long to be logged, together. One log_batch per result was
# 2 500 SQLite commits for sweeps/hard.yaml, the largest share of the driver's CPU (profiled), taken from
# the trials on a small machine. What a driver killed in between had not logged, a resume logs from Tune's
# own record of the trial (sync_trials).
FLUSH_SECONDS = 5.0


def _metrics(result: dict[str, Any], step: int) -> list[Metric]:
    now = int(time.time() * 1000)
    return [
        Metric(key, float(value), now, step)
        for key, value in result.items()
        if key not in RAY_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


class MLflowTrialCallback(tune.Callback):
    """Mirrors every Tune trial into a child run of the sweep's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, sweep_name: str):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.sweep_name = sweep_name
        self.run_ids: dict[str, str] = {}
        self.nodes: dict[str, str] = {}  # trial id -> the Ray node it last reported from
        self.restarts: dict[str, int] = {}
        self.pending: dict[str, tuple[float, list[Metric], list[RunTag]]] = {}  # run id -> since when, what waits to be logged

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks into the sweep's state: without the client, and without what waits (a resume logs it from Tune's record)."""
        return {**vars(self), "_client": None, "pending": {}}

    @property
    def client(self) -> MlflowClient:
        if getattr(self, "_client", None) is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def _log(self, run_id: str, metrics: list[Metric], tags: list[RunTag], now: bool) -> None:
        """Add to what the run has waiting, and log it all (at most 1000 metrics a batch, MLflow's limit) when ``now`` or when due."""
        self.__dict__.setdefault("pending", {})  # a callback pickled before there was a buffer
        since, waiting, waiting_tags = self.pending.get(run_id, (time.monotonic(), [], []))
        waiting, waiting_tags = waiting + metrics, waiting_tags + tags
        if not (now or time.monotonic() - since >= FLUSH_SECONDS):
            self.pending[run_id] = (since, waiting, waiting_tags)
            return
        for start in range(0, max(len(waiting), 1), 1000):
            self.client.log_batch(run_id, metrics=waiting[start : start + 1000], tags=waiting_tags if start == 0 else [])
        self.pending.pop(run_id, None)  # only once logged: a failed call leaves it for the next

    def flush(self, run_id: str | None = None) -> None:
        """Log what waits: for one run, or for every run."""
        for waiting in [run_id] if run_id else list(self.__dict__.get("pending", {})):
            if waiting in self.pending:
                self._log(waiting, [], [], now=True)

    def _existing_run(self, trial_id: str) -> str | None:
        """The child run a trial already has: after a resume this callback is new, the runs are not."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}' and tags.`ray.trial_id` = '{trial_id}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def _run_for(self, trial: Any) -> str:
        """The trial's child run: known, found (after a resume or a refit this callback is new, the runs are not), or created.

        Every hook goes through here, so a trial that Tune gives up on before it
        ever started (its worker lost while being reused) still gets its run.
        """
        if trial.trial_id in self.run_ids:
            return self.run_ids[trial.trial_id]
        run_id = self._existing_run(trial.trial_id)
        if run_id is None:
            config = dict(trial.config)
            tags = {
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                MLFLOW_RUN_NAME: str(trial),
                SWEEP_TAG: self.sweep_name,
                ROLE_TAG: "trial",
                "ray.trial_id": trial.trial_id,
                **{f"musicvae.{k}": str(config[k]) for k in ("model", "clusterer", "beta", "latent_dim", "seed") if k in config},
            }
            run_id = self.client.create_run(self.experiment_id, run_name=str(trial), tags=tags).info.run_id
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(config.items())])
        self.run_ids[trial.trial_id] = run_id
        return run_id

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        known = trial.trial_id in self.run_ids
        run_id = self._run_for(trial)
        run = self.client.get_run(run_id)
        if run.info.status != "RUNNING":  # a trial restarted after an interruption or a lost worker: running again
            self.client.update_run(run_id, status="RUNNING")
        if not known and ERROR_TAG in run.data.tags:  # what ended it last time is no longer true
            self.client.delete_tag(run_id, ERROR_TAG)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """The result's metrics, gathered for up to FLUSH_SECONDS with the run's others.

        At once: a trial's first result, or its first from another node (the ``ray.node_id`` tag says where it
        runs, and fault tests read it to see a trial under way), and its final result (scored or failed).
        """
        run_id = self._run_for(trial)
        tags = []
        node = result.get("node_id")
        if node and self.nodes.get(trial.trial_id) != node:  # where it runs now (a restart may move it)
            self.nodes[trial.trial_id] = node
            tags.append(RunTag("ray.node_id", node))
        final = "trial_seconds" in result or bool(result.get("failed"))
        self._log(run_id, _metrics(result, int(result.get("training_iteration", 0))), tags, now=final or bool(tags))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Log what has waited FLUSH_SECONDS, also for a trial that reports nothing new (a long epoch)."""
        for run_id, (since, _, _) in list(self.__dict__.get("pending", {}).items()):
            if time.monotonic() - since >= FLUSH_SECONDS:
                self.flush(run_id)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.flush()

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Tune restarts a trial whose worker died: count it on the run (the run stays the same)."""
        run_id = self._run_for(trial)
        self.flush(run_id)  # the epochs before the crash
        if trial.trial_id not in self.restarts:  # counted on the run before a resume or a refit
            self.restarts[trial.trial_id] = int(self.client.get_run(run_id).data.tags.get(RESTARTS_TAG, 0))
        self.restarts[trial.trial_id] += 1
        self.client.set_tag(run_id, RESTARTS_TAG, str(self.restarts[trial.trial_id]))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """FINISHED with its artifacts; FAILED when the trial reported an error; KILLED when the scheduler stopped it.

        Trials put their artifacts (figures, embedding, latent analysis, the
        MLflow model) into their last checkpoint rather than logging them, so
        only the driver ever writes to the tracking store and remote workers
        need no access to it; Tune has already persisted the checkpoint to the
        sweep's storage (local or a pyarrow URI) when this is called.
        """
        run_id = self._run_for(trial)
        self.flush(run_id)
        result = trial.last_result or {}
        outcome = result_outcome(result)  # Tune calls this while the trial's status still says RUNNING
        if outcome == "FAILED":
            self.client.log_batch(run_id, tags=[RunTag(ERROR_TAG, str(result.get("error", ""))[:5000])])
            self.client.log_text(run_id, str(result.get("traceback", "")), "error.txt")
        elif outcome == "KILLED":
            reason = f"stopped early by the scheduler after epoch {result.get('epoch', '?')}"
            self.client.log_batch(run_id, tags=[RunTag(STOPPED_TAG, reason)])
        else:
            notes = result.get("notes") or {}
            if notes:
                self.client.log_batch(run_id, tags=[RunTag(f"musicvae.note.{k}", str(v)[:5000]) for k, v in notes.items()])
            if trial.checkpoint is not None:
                with trial.checkpoint.as_directory() as directory:
                    artifacts = Path(directory) / "artifacts"
                    if artifacts.is_dir():
                        self.client.log_artifacts(run_id, str(artifacts))
        self.client.set_terminated(run_id, status=outcome)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Tune gave up on the trial: its worker died more often than ``trials.max_retries``."""
        run_id = self._run_for(trial)
        self.flush(run_id)
        self.client.log_batch(run_id, tags=[RunTag(ERROR_TAG, trial_error(trial))])
        self.client.set_terminated(run_id, status="FAILED")


def trial_outcome(trial: Any) -> str | None:
    """The child run's final status for a Tune trial, or None while it still has to run (a ``--resume`` continues it)."""
    if trial.status == "ERROR":  # Tune gave up: its worker kept dying
        return "FAILED"
    return result_outcome(trial.last_result or {}) if trial.status == "TERMINATED" else None


def result_outcome(result: dict[str, Any]) -> str:
    """FAILED when the trial raised or its loss went NaN, KILLED when the scheduler stopped it before it was scored, else FINISHED."""
    if result.get("failed"):
        return "FAILED"
    return "FINISHED" if "trial_seconds" in result else "KILLED"


def trial_error(trial: Any) -> str:
    """The last line of a failed trial's traceback, e.g. 'ValueError: n_samples=36 should be >= n_clusters=40.'.

    Tune writes the error file in the driver's staging folder before calling
    callbacks; the copy in (possibly remote) storage may not be synced yet.
    """
    text = ""
    if trial.error_file and Path(trial.error_file).exists():
        text = Path(trial.error_file).read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "unknown error")[:5000]


def sync_trials(callback: MLflowTrialCallback, trials: list, histories: dict[str, Any]) -> dict[str, int]:
    """Re-log whatever Tune's state holds and MLflow does not; idempotent (a second call logs nothing).

    ``trials`` are Tune's (``ExperimentAnalysis(run_path).trials``) and
    ``histories`` their result rows by trial id. For each trial: its child run
    (created if missing), every metric value at a step MLflow lacks, and its
    final status with its artifacts (FINISHED needs ``embedding.parquet``).
    For when the tracking server was away longer than the client's retries.
    """
    counts = {"runs created": 0, "metric values": 0, "runs completed": 0}
    client = callback.client
    children = search_all_runs(client, callback.experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{callback.parent_run_id}'")
    runs = {r.data.tags.get("ray.trial_id"): r for r in children}  # one search, not one per trial
    callback.run_ids.update({trial_id: r.info.run_id for trial_id, r in runs.items() if trial_id})
    for trial in trials:
        counts["runs created"] += trial.trial_id not in runs
        run_id = callback._run_for(trial)
        counts["metric values"] += _fill_history(client, run_id, histories.get(trial.trial_id))
        run = runs.get(trial.trial_id) or client.get_run(run_id)
        node = (trial.last_result or {}).get("node_id")
        if node and "ray.node_id" not in run.data.tags:
            client.set_tag(run_id, "ray.node_id", node)
        outcome = trial_outcome(trial)
        logged = outcome != "FINISHED" or any(a.path == "embedding.parquet" for a in client.list_artifacts(run_id))
        if outcome is not None and (run.info.status != outcome or not logged):
            (callback.on_trial_error if trial.status == "ERROR" else callback.on_trial_complete)(0, trials, trial)
            counts["runs completed"] += 1
    return counts


def _fill_history(client: MlflowClient, run_id: str, frame: Any) -> int:
    """Log the (step, value) pairs of ``frame`` (Tune's result rows) that the run's metric histories lack."""
    if frame is None or not len(frame) or "training_iteration" not in frame:
        return 0
    missing = []
    for key in frame.columns:
        if key in RAY_FIELDS or "/" in key or frame[key].dtype.kind not in "iuf":  # Ray's fields, config/*, text, flags
            continue
        have = {m.step for m in client.get_metric_history(run_id, key)}
        rows = frame[["training_iteration", key]].dropna()
        missing += [Metric(key, float(v), int(time.time() * 1000), int(step)) for step, v in rows.itertuples(index=False) if int(step) not in have]
    for start in range(0, len(missing), 1000):  # MLflow takes at most 1000 metrics a batch
        client.log_batch(run_id, metrics=missing[start : start + 1000])
    return len(missing)
