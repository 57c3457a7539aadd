"""MLflow: one parent run per sweep, one nested child run per trial.

All MLflow writes happen in the driver, through the client API with explicit
run ids (no global "active run"), so concurrent trials can never write into
each other's runs and a SQLite store has a single writer.

Ray ships ``MLflowLoggerCallback``, but it writes every metric of every result
with its own call (about 20 round trips per epoch here, each a SQLite commit),
logs Ray's bookkeeping fields as metrics and cannot nest runs under a parent.
:class:`MLflowTrialCallback` does the same job with one ``log_batch`` per result.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from ray import tune

if TYPE_CHECKING:
    from musicvae.selection import Selection

SWEEP_TAG = "musicvae.sweep"
ROLE_TAG = "musicvae.role"
PAGE_SIZE = 1000  # runs per search_runs call (MLflow's default page): a sweep of thousands of trials takes a few pages

# Keys of a Tune result that are ours to log (Ray adds its own bookkeeping).
RAY_FIELDS = frozenset(
    {"failed", "training_iteration", "time_this_iter_s", "timestamp", "time_since_restore", "iterations_since_restore", "pid", "date", "node_ip", "hostname", "done", "trial_id", "experiment_tag"}
)


def search_all_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    """Every matching run, page by page: one ``search_runs`` call returns at most one page (PAGE_SIZE runs)."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=PAGE_SIZE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def connect(tracking_uri: str, experiment: str) -> tuple[MlflowClient, str]:
    """A client and the experiment id (created on first use).

    Deliberately no ``mlflow.set_tracking_uri``: it also sets the process's
    MLFLOW_TRACKING_URI, which would leak into every later run and subprocess.
    """
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    return client, experiment_id


def start_parent_run(client: MlflowClient, experiment_id: str, sweep_name: str, params: dict[str, Any], sweep_yaml: str, ray_run: str = "") -> str:
    """The sweep's run; ``ray_run`` (Tune's experiment folder name) is what ``musicvae sweep --resume`` takes."""
    tags = {SWEEP_TAG: sweep_name, ROLE_TAG: "sweep", **({"musicvae.ray_run": ray_run} if ray_run else {})}
    run = client.create_run(experiment_id, run_name=sweep_name, tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    client.log_text(run.info.run_id, sweep_yaml, "sweep.yaml")
    return run.info.run_id


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

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def _existing_run(self, trial_id: str) -> str | None:
        """The child run a trial already has: after a resume this callback is new, the runs are not."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{self.parent_run_id}' and tags.`ray.trial_id` = '{trial_id}'",
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self.run_ids:  # a restarted trial keeps its run
            return
        existing = self._existing_run(trial.trial_id)
        if existing:
            self.run_ids[trial.trial_id] = existing
            self.client.update_run(existing, status="RUNNING")
            return
        config = dict(trial.config)
        tags = {
            MLFLOW_PARENT_RUN_ID: self.parent_run_id,
            MLFLOW_RUN_NAME: str(trial),
            SWEEP_TAG: self.sweep_name,
            ROLE_TAG: "trial",
            "ray.trial_id": trial.trial_id,
            **{f"musicvae.{k}": str(config[k]) for k in ("model", "clusterer", "beta", "latent_dim", "seed") if k in config},
        }
        run = self.client.create_run(self.experiment_id, run_name=str(trial), tags=tags)
        self.run_ids[trial.trial_id] = run.info.run_id
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in sorted(config.items())])

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        run_id = self.run_ids.get(trial.trial_id)
        if not run_id:
            return
        tags = []
        node = result.get("node_id")
        if node and self.nodes.get(trial.trial_id) != node:  # where it runs now (a restart may move it)
            self.nodes[trial.trial_id] = node
            tags.append(RunTag("ray.node_id", node))
        self.client.log_batch(run_id, metrics=_metrics(result, int(result.get("training_iteration", 0))), tags=tags)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Tune restarts a trial whose worker died: count it on the run (the run stays the same)."""
        run_id = self.run_ids.get(trial.trial_id)
        if run_id:
            self.restarts[trial.trial_id] = self.restarts.get(trial.trial_id, 0) + 1
            self.client.set_tag(run_id, "musicvae.restarts", str(self.restarts[trial.trial_id]))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """FINISHED with its artifacts; FAILED when the trial reported an error; KILLED when the scheduler stopped it.

        Trials put their artifacts (figures, embedding, latent analysis, the
        MLflow model) into their last checkpoint rather than logging them, so
        only the driver ever writes to the tracking store and remote workers
        need no access to it; Tune has already persisted the checkpoint to the
        sweep's storage (local or a pyarrow URI) when this is called.
        """
        run_id = self.run_ids.get(trial.trial_id)
        if not run_id:
            return
        result = trial.last_result or {}
        if result.get("failed"):
            self.client.log_batch(run_id, tags=[RunTag("musicvae.error", str(result.get("error", ""))[:5000])])
            self.client.log_text(run_id, str(result.get("traceback", "")), "error.txt")
            self.client.set_terminated(run_id, status="FAILED")
            return
        if "trial_seconds" not in result:  # stopped by the scheduler before it was clustered
            reason = f"stopped early by the scheduler after epoch {result.get('epoch', '?')}"
            self.client.log_batch(run_id, tags=[RunTag("musicvae.stopped", reason)])
            self.client.set_terminated(run_id, status="KILLED")
            return
        notes = result.get("notes") or {}
        if notes:
            self.client.log_batch(run_id, tags=[RunTag(f"musicvae.note.{k}", str(v)[:5000]) for k, v in notes.items()])
        if trial.checkpoint is not None:
            with trial.checkpoint.as_directory() as directory:
                artifacts = Path(directory) / "artifacts"
                if artifacts.is_dir():
                    self.client.log_artifacts(run_id, str(artifacts))
        self.client.set_terminated(run_id, status="FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Tune gave up on the trial: its worker died more often than ``trials.max_retries``."""
        run_id = self.run_ids.get(trial.trial_id)
        if not run_id:
            return
        self.client.log_batch(run_id, tags=[RunTag("musicvae.error", trial_error(trial))])
        self.client.set_terminated(run_id, status="FAILED")


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


def close_unfinished_children(client: MlflowClient, experiment_id: str, parent_run_id: str) -> int:
    """Mark any child still RUNNING as FAILED (the sweep was interrupted); returns how many."""
    runs = search_all_runs(client, experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' and attributes.status = 'RUNNING'")
    for run in runs:
        client.set_tag(run.info.run_id, "musicvae.error", "sweep ended before this trial finished")
        client.set_terminated(run.info.run_id, status="FAILED")
    return len(runs)


def remove_forgotten_children(client: MlflowClient, experiment_id: str, parent_run_id: str, known_trial_ids: set[str]) -> int:
    """On resume: delete the child runs of trials that the restored Tune state does not know.

    A crash loses the trials started after Tune's last experiment snapshot;
    Tune and Optuna draw new ones in their place, so the old partial runs
    would be duplicates. They are soft-deleted (``mlflow gc`` purges them;
    ``MlflowClient.restore_run`` brings one back). Returns how many.
    """
    runs = search_all_runs(client, experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'")
    forgotten = [run for run in runs if run.data.tags.get("ray.trial_id") not in known_trial_ids]
    for run in forgotten:
        client.set_tag(run.info.run_id, "musicvae.error", "lost in a crash before Tune's snapshot; replaced by a new trial on resume")
        client.set_terminated(run.info.run_id, status="KILLED")
        client.delete_run(run.info.run_id)
    return len(forgotten)


def tag_selection(client: MlflowClient, run_id: str, selection: Selection) -> None:
    """The label-free choice as tags on the parent run, for the runs table and search ("tags.`musicvae.selected` = ...")."""
    tags = {"musicvae.selection_rule": selection.rule, "musicvae.selected": selection.winner or "none", "musicvae.selection_stable": str(selection.stable)}
    tags.update({f"musicvae.pick.{rule}": pick for rule, pick in selection.picks.items()})
    if selection.oracle is not None:
        tags["musicvae.oracle"] = selection.oracle
    client.log_batch(run_id, tags=[RunTag(k, v[:5000]) for k, v in tags.items()])


def log_summary(client: MlflowClient, run_id: str, metrics: dict[str, float], artifacts: dict[str, str]) -> None:
    """Best-trial metrics and text artifacts (leaderboard, extraction report) on the parent run."""
    finite = [Metric(k, float(v), int(time.time() * 1000), 0) for k, v in metrics.items() if v is not None and math.isfinite(v)]
    client.log_batch(run_id, metrics=finite)
    for name, text in artifacts.items():
        client.log_text(run_id, text, name)
