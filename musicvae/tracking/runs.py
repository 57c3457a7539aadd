"""MLflow: one parent run per sweep, one nested child run per trial.

Every MLflow tag musicvae writes is named here, and so is every helper that
opens, searches, closes or annotates runs. No Ray: ``musicvae report`` reads
runs back without starting or importing it. The Tune callback that mirrors
each trial into its child run is :mod:`musicvae.tracking.trial_tracking`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

if TYPE_CHECKING:
    from musicvae.evaluation.selection import Selection

SWEEP_TAG = "musicvae.sweep"
ROLE_TAG = "musicvae.role"
DESCRIPTION_TAG = "musicvae.description"  # the sweep file's description, on the parent run
ERROR_TAG = "musicvae.error"  # why a trial failed (its own error, or a lost worker)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # read by the MLflow 3 UI to choose an experiment's landing page
RESTARTS_TAG = "musicvae.restarts"  # how often Tune restarted the trial after its worker died
STOPPED_TAG = "musicvae.stopped"  # why the scheduler stopped a trial
PAGE_SIZE = 1000  # runs per search_runs call (MLflow's default page): a sweep of thousands of trials takes a few pages


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
    # The MLflow 3 UI opens an experiment of this kind on its runs table, not on the GenAI overview; set only on
    # experiments musicvae creates, never on a user's own.
    experiment_id = found.experiment_id if found else client.create_experiment(experiment, tags={EXPERIMENT_KIND_TAG: "custom_model_development"})
    return client, experiment_id


def start_parent_run(client: MlflowClient, experiment_id: str, sweep_name: str, params: dict[str, Any], sweep_yaml: str, ray_run: str = "") -> str:
    """The sweep's run; ``ray_run`` (Tune's experiment folder name) is what ``musicvae sweep --resume`` takes."""
    tags = {SWEEP_TAG: sweep_name, ROLE_TAG: "sweep", **({"musicvae.ray_run": ray_run} if ray_run else {})}
    run = client.create_run(experiment_id, run_name=sweep_name, tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    client.log_text(run.info.run_id, sweep_yaml, "sweep.yaml")
    return run.info.run_id


def close_unfinished_children(client: MlflowClient, experiment_id: str, parent_run_id: str) -> int:
    """Mark any child still RUNNING as FAILED (the sweep was interrupted); returns how many."""
    runs = search_all_runs(client, experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' and attributes.status = 'RUNNING'")
    for run in runs:
        client.set_tag(run.info.run_id, ERROR_TAG, "sweep ended before this trial finished")
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
        client.set_tag(run.info.run_id, ERROR_TAG, "lost in a crash before Tune's snapshot; replaced by a new trial on resume")
        client.set_terminated(run.info.run_id, status="KILLED")
        client.delete_run(run.info.run_id)
    return len(forgotten)


def trial_id_of(name: str) -> str:
    """The Tune trial id in a trial's name (``vae-kmeans-1a2b3c4d``, musicvae.tune.sweep.trial_name), its child run's ``ray.trial_id``."""
    return name.rsplit("-", 1)[-1]


def trial_run_ids(client: MlflowClient, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """The sweep's child runs by Tune trial id (their ``ray.trial_id`` tag): where each trial's artifacts are logged."""
    runs = search_all_runs(client, experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'")
    return {run.data.tags["ray.trial_id"]: run.info.run_id for run in runs if "ray.trial_id" in run.data.tags}


def tag_selection(client: MlflowClient, run_id: str, selection: Selection, description: str = "") -> None:
    """The label-free choice as tags on the parent run, for the runs table and search ("tags.`musicvae.selected` = ...").

    The run's description (``mlflow.note.content``, shown on its page) is the sweep's description and the selection summary.
    """
    tags = {DESCRIPTION_TAG: description} if description else {}
    tags |= {"musicvae.selection_rule": selection.rule, "musicvae.selected": selection.winner or "none", "musicvae.selection_stable": str(selection.stable)}
    tags[MLFLOW_RUN_NOTE] = "\n\n".join(part for part in (description, selection.summary()) if part)
    tags.update({f"musicvae.pick.{rule}": pick for rule, pick in selection.picks.items()})
    if selection.oracle is not None:
        tags["musicvae.oracle"] = selection.oracle
    client.log_batch(run_id, tags=[RunTag(k, v[:5000]) for k, v in tags.items()])


CHAMPION = "champion"  # the registered model's alias of the label-free rule's pick
PIPELINE_ARTIFACT = "pipeline"  # a trial run's fitted pipeline (musicvae.serving.pipeline.ARTIFACT)


@dataclass(frozen=True)
class Registered:
    """A sweep's pipelines in MLflow's model registry: the champion's version, and the oracle's where labels chose one."""

    name: str
    champion: str | None  # its version
    oracle: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{CHAMPION}"


def register_pipelines(client: MlflowClient, name: str, runs: dict[str, str], stable: bool) -> Registered:
    """A version of the registered model ``name`` per role's trial run (``selected``, and ``oracle`` where labels exist).

    The selected pipeline gets the alias ``champion``; the oracle's version is
    only tagged as such (it was chosen with the labels, so it is never the
    champion). One trial holding both roles is one version, tagged with both.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="musicvae pipelines: each sweep's label-free pick is the champion")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    versions: dict[str, str] = {}
    for run_id in dict.fromkeys(runs.values()):
        roles = [role for role, r in runs.items() if r == run_id]
        version = client.create_model_version(name, f"runs:/{run_id}/{PIPELINE_ARTIFACT}", run_id=run_id).version
        client.set_model_version_tag(name, version, ROLE_TAG, " and ".join(roles))
        if "oracle" in roles:
            client.set_model_version_tag(name, version, "musicvae.oracle", "best mean ARI: chosen with the labels, for evaluation only")
        if "selected" in roles:
            client.set_model_version_tag(name, version, "musicvae.stable", str(stable))
            client.set_registered_model_alias(name, CHAMPION, version)
        versions.update(dict.fromkeys(roles, version))
    return Registered(name, versions.get("selected"), versions.get("oracle"))


def log_summary(client: MlflowClient, run_id: str, metrics: dict[str, float], artifacts: dict[str, str]) -> None:
    """Best-trial metrics and text artifacts (leaderboard, extraction report) on the parent run."""
    finite = [Metric(k, float(v), int(time.time() * 1000), 0) for k, v in metrics.items() if v is not None and math.isfinite(v)]
    client.log_batch(run_id, metrics=finite)
    for name, text in artifacts.items():
        client.log_text(run_id, text, name)
