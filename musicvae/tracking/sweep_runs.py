"""A finished sweep read back from MLflow: its parent run, every trial as a record, its selection.

The parent run holds the objective and the sweep file; each child run a
trial's config (params), final metrics and status. They become
:class:`~musicvae.evaluation.leaderboard.TrialRecord` objects and go through the same
``trial_table``/``method_table`` as the sweep, so a report's numbers are the
leaderboard's numbers. Ray-free: ``musicvae report`` runs on any machine that
reaches the tracking store.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from musicvae import metric_registry as registry
from musicvae.config.params import TrialParams, param_kind
from musicvae.config.sections import SelectionConfig
from musicvae.evaluation.leaderboard import (
    TrialRecord,
    TrialStatus,
    method_table,
    trial_table,
)
from musicvae.evaluation.selection import Selection, choose
from musicvae.tracking.runs import ERROR_TAG, ROLE_TAG, STOPPED_TAG, SWEEP_TAG, search_all_runs


@dataclass(frozen=True)
class SweepRuns:
    """One sweep as MLflow holds it: the parent run and a record per child (trial) run."""

    name: str
    experiment: str
    parent: Run
    records: list[TrialRecord]
    objectives: list[str]  # primary first
    modes: list[str]
    run_ids: dict[str, str] = field(default_factory=dict)  # record name -> child run id
    selection: Selection | None = None  # the sweep's label-free choice (its selection.csv); None for sweeps that predate it

    @property
    def metric(self) -> str:
        return self.objectives[0]

    @property
    def mode(self) -> str:
        return self.modes[0]

    @property
    def run_id(self) -> str:
        return self.parent.info.run_id


def _experiment_id(client: MlflowClient, experiment: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        known = sorted(e.name for e in client.search_experiments())
        raise ValueError(f"no MLflow experiment named '{experiment}' (experiments there: {', '.join(known) or 'none'})")
    return found.experiment_id


def find_parent_run(client: MlflowClient, experiment: str, name: str, run_id: str | None = None) -> Run:
    """The sweep's parent run: ``run_id`` when given, else the latest run of that sweep (a sweep can be re-run)."""
    experiment_id = _experiment_id(client, experiment)
    if run_id is not None:
        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise ValueError(f"no MLflow run with id {run_id}") from None
        if run.data.tags.get(ROLE_TAG) != "sweep" or run.info.experiment_id != experiment_id:
            raise ValueError(f"run {run_id} is not a sweep's parent run in experiment '{experiment}'")
        if run.data.tags.get(SWEEP_TAG) != name:
            raise ValueError(f"run {run_id} belongs to sweep '{run.data.tags.get(SWEEP_TAG)}', not '{name}'")
        return run
    parents = search_all_runs(client, experiment_id, f"tags.`{ROLE_TAG}` = 'sweep'")
    matching = [run for run in parents if run.data.tags.get(SWEEP_TAG) == name]
    if not matching:
        known = sorted({run.data.tags.get(SWEEP_TAG, "") for run in parents} - {""})
        raise ValueError(f"no sweep named '{name}' in experiment '{experiment}' (sweeps there: {', '.join(known) or 'none'})")
    return max(matching, key=lambda run: run.info.start_time)


def typed_value(name: str, text: str) -> Any:
    """An MLflow param (always a string) as the TrialParams field's type, so method names read '(β=0.5)' as the sweep's do."""
    if name not in TrialParams.model_fields:
        return text
    if text == "None":
        return None
    kind = param_kind(name)
    if kind == "int":
        return int(float(text))
    if kind == "float":
        return float(text)
    return text


def record_from_run(run: Run) -> TrialRecord:
    """A child run as a trial record, with the statuses ``record_from_result`` gives the same trial from Tune.

    FAILED runs are FAILED with the reason from the ``musicvae.error`` tag;
    KILLED runs (the scheduler stopped them before clustering) are STOPPED,
    with the ``musicvae.stopped`` reason; a run still RUNNING counts as failed,
    since it has no result. Stores written before the callback set those
    statuses mark the same trials by a ``failed`` metric, or by a FINISHED run
    without the final ``trial_seconds``: both are read the same way.
    """
    name = run.info.run_name or run.info.run_id
    config = {key: typed_value(key, value) for key, value in run.data.params.items()}
    metrics = dict(run.data.metrics)
    status = run.info.status
    if status == "FAILED" or metrics.get("failed"):
        return TrialRecord(name, TrialStatus.FAILED, config, metrics, run.data.tags.get(ERROR_TAG, "unknown error")[:300])
    if status not in ("FINISHED", "KILLED"):
        return TrialRecord(name, TrialStatus.FAILED, config, metrics, f"unfinished (MLflow status {status}): the sweep was still running or was interrupted")
    if status == "KILLED" or "trial_seconds" not in metrics:
        epoch = metrics.get("epoch")
        reason = run.data.tags.get(STOPPED_TAG) or "stopped early" + (f" after epoch {int(epoch)}" if epoch is not None else "")
        return TrialRecord(name, TrialStatus.STOPPED, config, metrics, reason)
    return TrialRecord(name, TrialStatus.OK, config, metrics)


def sweep_objectives(parent: Run) -> tuple[list[str], list[str]]:
    """The objectives and modes from the parent's params ('silhouette,val_loss' / 'max,min'), primary first."""
    params = parent.data.params
    objectives = params.get("objective", "silhouette").split(",")
    modes = params.get("mode", "").split(",") if params.get("mode") else [registry.spec(m).mode for m in objectives]
    return objectives, modes


def read_sweep_runs(client: MlflowClient, experiment: str, name: str, run_id: str | None = None) -> SweepRuns:
    """The sweep's parent run and its trials, oldest trial first; ValueError naming what is missing."""
    parent = find_parent_run(client, experiment, name, run_id)
    children = search_all_runs(client, parent.info.experiment_id, f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'")
    children = sorted((run for run in children if run.data.tags.get(ROLE_TAG, "trial") == "trial"), key=lambda run: run.info.start_time)
    records, run_ids = [], {}
    for run in children:
        record = record_from_run(run)
        if record.name in run_ids:  # two runs with one name: keep both apart
            record = TrialRecord(f"{record.name} ({run.info.run_id[:8]})", record.status, record.config, record.metrics, record.error)
        records.append(record)
        run_ids[record.name] = run.info.run_id
    objectives, modes = sweep_objectives(parent)
    return SweepRuns(name, experiment, parent, records, objectives, modes, run_ids, read_selection(client, parent))


def read_selection(client: MlflowClient, parent: Run) -> Selection | None:
    """The selection the sweep made, from the parent run's ``selection.csv`` (every rule's score per method)."""
    names = {item.path for item in client.list_artifacts(parent.info.run_id)}
    if "selection.csv" not in names:
        return None
    with tempfile.TemporaryDirectory() as folder:
        scores = pd.read_csv(client.download_artifacts(parent.info.run_id, "selection.csv", folder))
    params, metrics = parent.data.params, parent.data.metrics
    cfg = SelectionConfig(
        rule=params.get("selection_rule", "combined"),
        sample=int(params.get("selection_sample", SelectionConfig().sample)),
        min_stability=float(params.get("selection_min_stability", SelectionConfig().min_stability)),
    )
    n_labels = int(params.get("n_labels", 0)) or None
    # The rows scored: logged since issue 35; before, the sample or the tracks, whichever was fewer.
    rows = int(metrics.get("selection_rows", min(cfg.sample, int(params.get("n_tracks", cfg.sample)))))
    return choose(scores, cfg, int(metrics.get("selection_spaces", 0)), rows, n_labels=n_labels)


@dataclass(frozen=True)
class SweepTables:
    """The sweep's trial table and method table, as the sweep's own leaderboard builds them."""

    sweep: SweepRuns
    table: pd.DataFrame
    methods: pd.DataFrame


def build_tables(sweep: SweepRuns) -> SweepTables:
    table = trial_table(sweep.records, sweep.metric, sweep.mode)
    table.insert(1, "run_id", table["trial"].map(sweep.run_ids))
    methods = method_table(table, sweep.metric, sweep.mode)
    return SweepTables(sweep, table, sweep.selection.ranked(methods) if sweep.selection is not None else methods)
