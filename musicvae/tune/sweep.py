"""A sweep: Ray Tune runs the trials, Optuna picks their configurations, MLflow records them.

Flow of :func:`run_sweep`::

    sweep file -> features (once, into Ray's object store) -> Tuner(OptunaSearch)
        -> trials (musicvae.trial.run_trial, reporting every epoch, checkpointing;
           one training per model, shared by its clusterers: musicvae.training.trained_models)
        -> MLflow parent + child runs (metrics, figures, embeddings)
        -> leaderboard (per trial, and per method over seeds) -> label-free selection
        -> UMAP/t-SNE of the selected and the oracle trial, into their runs (musicvae.reporting.trial_projection),
           computed side by side as Ray tasks with the β grid's (start_projections)
        -> summary figures (metrics heatmap, β grid)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from musicvae import console
from musicvae.config.params import K_CLUSTERERS, Range, TrialParams, choices, default_k_range, k_bound
from musicvae.config.sections import TrackingConfig
from musicvae.config.sweep_file import SweepConfig, SweepFileError
from musicvae.data import locations
from musicvae.data.dataset import FeatureSet, load_feature_set
from musicvae.evaluation.leaderboard import (
    TrialStatus,
    leaderboard,
    method_table,
    method_trial,
    pareto_front,
)
from musicvae.evaluation.selection import Selection, select_methods
from musicvae.ray_session import init_ray
from musicvae.reporting.tables import CONSOLE_WIDTH, format_console, format_leaderboard, format_methods, format_representations
from musicvae.tracking import parent_run
from musicvae.tune import trainable
from musicvae.tune.search import optuna_search

if TYPE_CHECKING:
    from musicvae.tracking import runs as tracking

# ---------------------------------------------------------------------- run it


def trial_name(trial: Any) -> str:
    """Readable trial (and MLflow run) names: vae-kmeans-1a2b3c4d."""
    config = trial.config
    return f"{config.get('model', 'vae')}-{config.get('clusterer', 'kmeans')}-{trial.trial_id}"


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep ends with: its tables, its selection, where MLflow has it all, and the champion pipeline it registered."""

    leaderboard: pd.DataFrame
    methods: pd.DataFrame
    parent_run_id: str
    tracking_uri: str
    experiment_id: str
    seconds: float
    run_path: str = ""  # Tune's experiment folder (or URI): what --resume continues
    pareto: pd.DataFrame | None = None
    selection: Selection | None = None
    registered: tracking.Registered | None = None  # the champion's version in MLflow's model registry
    name: str = ""
    experiment: str = "musicvae"

    def summary(self) -> str:
        """The sweep's last screen (120 columns): the methods a reader decides on, the choice, and how to use the answer."""
        prose = ["", "Methods (mean over seeds; every trial and column: leaderboard.csv on the parent run, or musicvae report):", ""]
        prose += [*format_console(self.methods, self.selection).splitlines(), ""]
        if self.selection is not None:
            prose += [*self.selection.summary().splitlines(), ""]
            if representations := format_representations(self.selection):
                prose += [*representations.splitlines(), ""]
        prose.append(f"Sweep finished in {self.seconds:.1f} s. MLflow parent run {self.parent_run_id} in experiment '{self.experiment}'.")
        options = "" if self.tracking_uri == TrackingConfig().resolved_uri() else f" --tracking-uri {self.tracking_uri}"
        options += "" if self.experiment == TrackingConfig().experiment else f" --experiment {self.experiment}"
        commands = []  # whole, one to a line, to be copied: a long path may pass 120 columns, a wrapped command would not run
        if self.registered is not None and self.registered.champion:
            prose.append(
                f"Champion: {self.registered.uri} (version {self.registered.champion} of registered model '{self.registered.name}'). Label a whole collection:"
            )
            commands.append(
                f"  musicvae assign {self.registered.uri} MUSIC_DIR --out assignments/"
                + (f" --tracking-uri {self.tracking_uri}" if "--tracking-uri" in options else "")
            )
        ui = _ui_command(self.tracking_uri, self.experiment_id).split(", then open ")
        commands += ["Open the MLflow UI:", f"  {ui[0]}", *(f"  then open {page}" for page in ui[1:])]
        commands += ["Explore the results (report.html: tables, charts, an embedding explorer to listen through):", f"  musicvae report {self.name}{options}"]
        return "\n".join([*(_fit(line, CONSOLE_WIDTH) for line in prose), *commands])


def runs_page(server: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow UI.

    MLflow 3.17's UI opens an experiment on the GenAI overview unless the
    link (or the browser's last choice) says ``workflowType=machine_learning``;
    it reads the ``mlflow.experimentKind`` tag musicvae sets only where its
    GenAI / Model training switch is off.
    """
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _ui_command(uri: str, experiment_id: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {runs_page(uri, experiment_id)}"
    mlflow_bin = Path(sys.executable).parent / "mlflow"  # works without activating the venv
    return f"{mlflow_bin if mlflow_bin.exists() else 'mlflow'} ui --backend-store-uri {uri}, then open {runs_page('http://127.0.0.1:5000', experiment_id)}"


def with_k(cfg: SweepConfig, n_tracks: int) -> SweepConfig:
    """The sweep with k in its space: as the file sets it (checked against the tracks), else searched over the default range.

    The number of groups is part of the answer, so the labels never set it: a
    grid searches :func:`~musicvae.config.params.default_k_range`, another sampler
    2..:func:`~musicvae.config.params.k_bound`. A k the tracks cannot hold is an error that names the key.
    """
    if not any(c in K_CLUSTERERS for c in choices(cfg.space, "clusterer")):
        return cfg
    spec = cfg.space.get("n_clusters")
    if spec is not None:
        largest = spec.high if isinstance(spec, Range) else max(v for v in (spec if isinstance(spec, list) else [spec]) if v is not None)
        if largest > n_tracks:
            raise SweepFileError(f"space.n_clusters: {largest:g} clusters exceed the {n_tracks} tracks of the data")
        return cfg
    k = default_k_range(n_tracks) if cfg.search.sampler == "grid" else Range(low=2, high=k_bound(n_tracks))
    return cfg.model_copy(update={"space": {**cfg.space, "n_clusters": k}})


# ------------------------------------------------------------------- resume


def sync_run(run_path: str) -> dict[str, int]:
    """``musicvae sync``: re-log to MLflow whatever this sweep run's Tune state holds that MLflow lacks (:func:`trial_tracking.sync_trials`)."""
    from musicvae.config.sweep_file import parse_sweep
    from musicvae.tracking import runs as tracking
    from musicvae.tracking import trial_tracking

    cfg = parse_sweep(yaml.safe_load(locations.load_run_sweep(run_path)), origin=f"{run_path}/{locations.SWEEP_FILE}")
    saved = json.loads(locations.read_text(f"{run_path}/{locations.RUN_FILE}"))
    _, experiment_id = tracking.connect(saved["tracking_uri"], cfg.tracking.experiment)
    return _sync(run_path, trial_tracking.MLflowTrialCallback(saved["tracking_uri"], experiment_id, saved["parent_run_id"], cfg.name))


def _sync(run_path: str, callback: Any) -> dict[str, int]:
    from ray.tune import ExperimentAnalysis

    from musicvae.tracking import trial_tracking

    analysis = ExperimentAnalysis(run_path)
    return trial_tracking.sync_trials(callback, analysis.trials, analysis.trial_dataframes)


# --------------------------------------------------------------------- the tuner


def _max_epochs(cfg: SweepConfig) -> int:
    spec = cfg.space.get("epochs", TrialParams.model_fields["epochs"].default)
    if isinstance(spec, list):
        return max(int(v) for v in spec)
    return int(getattr(spec, "high", spec))


def build_scheduler(cfg: SweepConfig) -> Any:
    """ASHA on the per-epoch loss, or None (Tune's FIFO: every trial runs to the end)."""
    from ray.tune.schedulers import ASHAScheduler

    sched = cfg.scheduler
    if sched.kind == "none":
        return None
    return ASHAScheduler(
        time_attr="epoch",
        metric=sched.metric,
        mode="min",
        max_t=max(_max_epochs(cfg), sched.grace_period + 1),
        grace_period=sched.grace_period,
        reduction_factor=sched.reduction_factor,
        brackets=sched.brackets,
        stop_last_trials=False,  # a trial that reached its last epoch goes on to be clustered and scored
    )


def projection_cache(cfg: SweepConfig) -> str | None:
    """Where trials cache UMAP/t-SNE coordinates: the local cache_dir; none when the cache is remote (a URI)."""
    return None if locations.is_uri(cfg.data.cache_dir) else locations.absolute(cfg.data.cache_dir)


def models_store(cfg: SweepConfig, run_name: str) -> str | None:
    """Where one sweep run keeps the models its trials share (musicvae.training.trained_models): under the local cache_dir, per run."""
    return None if (root := projection_cache(cfg)) is None else str(Path(root) / "trained" / run_name)


def replica_plan(cfg: SweepConfig) -> list[dict[str, Any]]:
    """The configurations whose seeds of a model are trained together (musicvae.training.trained_models): a grid's points.

    Other samplers draw each trial as it comes, so a trial cannot know which other seeds of its model will run.
    """
    return cfg.fixed_points[: cfg.num_samples] if cfg.search.sampler == "grid" and cfg.trials.replicas else []


def build_trainable(cfg: SweepConfig, data: FeatureSet, run_name: str) -> Any:
    from ray import tune

    resources = cfg.resources
    options = {"trials": cfg.trials, "resources": resources, "cache_dir": projection_cache(cfg), "selection": cfg.selection}
    options.update(models_dir=models_store(cfg, run_name), plan=replica_plan(cfg))
    return tune.with_resources(
        # The data goes to the object store once; every trial reads it from there.
        tune.with_parameters(trainable.tune_trainable, data=data, **options),
        # A fractional GPU (e.g. 0.25) packs several small models on one GPU.
        {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial},
    )


def _tune_environment() -> None:
    # Trials report losses every epoch and the clustering metrics (the
    # objective) once at the end; Tune's strict check wants the objective in
    # every result. The metric name itself is validated by the sweep file's
    # schema, which is what that check guards against.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # What a resume knows is Tune's last snapshot of the experiment (and of the
    # Optuna study). Tune's default ("auto") snapshots at most every 10 s; a
    # trial started after the last snapshot is forgotten by a crash, so snapshot
    # more often: for a few hundred trials it takes milliseconds.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # Quiet (no -v): Tune's new output engine prints its configuration box and
    # "View detailed results" even at verbose=0; its older engine at verbose=0
    # prints nothing, and our progress bar (musicvae.tune.progress) takes its place.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "1" if console.verbose() else "0"
    # Tune's own logs of every result: its JSON and CSV files (build_tuner adds them back: Tune's
    # ExperimentAnalysis reads them), not TensorBoard's, which MLflow replaces. Writing those took
    # the driver 3 to 8 CPU seconds of sweeps/hard.yaml's 44 (py-spy), beside the trials on 2 cores.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"


def build_tuner(cfg: SweepConfig, data: FeatureSet, callbacks: list, run_name: str | None = None) -> Any:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    run_name = run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    _tune_environment()
    return tune.Tuner(
        build_trainable(cfg, data, run_name),
        tune_config=tune.TuneConfig(
            search_alg=optuna_search(cfg.space, cfg.search, cfg.fixed_points),
            scheduler=build_scheduler(cfg),
            num_samples=cfg.num_samples,
            max_concurrent_trials=cfg.search.max_concurrent_trials,
            time_budget_s=cfg.search.time_budget_s,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
            # A worker process serves trial after trial: torch, librosa and UMAP's
            # JIT-compiled code (~20 s to compile) are loaded once per worker, not once per trial.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=locations.storage_root(cfg.storage_path),
            callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback()],  # Tune's result files (see _tune_environment)
            # Restarts of a trial whose worker died; the trial's own errors are results (tune_trainable).
            failure_config=tune.FailureConfig(max_failures=cfg.trials.max_retries),
            # Every checkpoint is kept while the sweep runs, and all but each trial's last are pruned once it ends
            # (prune_checkpoints). With num_to_keep, Tune deletes a checkpoint as soon as a newer one is registered,
            # before its next experiment snapshot records the newer one: a driver killed in between resumes a trial
            # from a checkpoint that no longer exists ("Could not recover from checkpoint"), and the trial fails.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            verbose=console.tune_verbosity(),  # 0: our progress bar (musicvae.tune.progress) instead of Tune's tables
        ),
    )


def fit_settled(tuner: Any, run_path: str, trainable: Any, rounds: int) -> Any:
    """``tuner.fit()``, then the trials Tune gave up on run again from their last checkpoint, at most ``rounds`` times.

    Tune errors one of our trials only when its worker was lost (a trial's own
    exception is a result, see :func:`tune_trainable`): after its restarts
    (``trials.max_retries``) ran out, or, in Ray 2.60, at once when the worker
    is lost while Tune hands it the next trial (``reuse_actors``): the actor's
    failure requeues the trial and the failed ``reset`` task then errors it,
    never started. Restoring the experiment with ``resume_errored`` runs them
    again (a trial whose restarts ran out gets one more try a round).
    """
    from ray import tune

    results = tuner.fit()
    for round_ in range(1, rounds + 1):
        if not results.num_errors:
            break
        print(f"{results.num_errors} trial(s) lost with their worker; running them again (round {round_} of {rounds})", flush=True)
        results = tune.Tuner.restore(run_path, trainable, resume_unfinished=True, resume_errored=True).fit()
    return results


def prune_checkpoints(results: Any) -> int:
    """Delete every checkpoint but each trial's last (its final artifacts, or where it stopped); returns how many.

    Run only after ``fit`` has returned: no Tune snapshot can then point at a
    deleted checkpoint. Works on any storage (the checkpoint's own filesystem).
    """
    import pyarrow.fs as pafs

    removed = 0
    for result in results:
        if result.checkpoint is None:
            continue
        fs, keep = result.checkpoint.filesystem, result.checkpoint.path.rstrip("/")
        folder = keep.rsplit("/", 1)[0]
        for info in fs.get_file_info(pafs.FileSelector(folder)):
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_") and info.path.rstrip("/") != keep:
                fs.delete_dir(info.path)
                removed += 1
    return removed


def select_sweep(cfg: SweepConfig, table: pd.DataFrame, checkpoints: dict[str, Any], data: FeatureSet) -> Selection:
    """The label-free choice over the finished trials, each clustering scored in the sweep's shared spaces (musicvae.evaluation.selection)."""
    from musicvae.trial import read_embedding

    clusters, embeddings = {}, {}
    for trial in table.loc[table["status"] == TrialStatus.OK, "trial"]:
        if trial in checkpoints:
            with checkpoints[trial].as_directory() as directory:
                clusters[trial], embeddings[trial] = read_embedding(Path(directory) / "artifacts")
    return select_methods(table, clusters, embeddings, data.inputs, cfg.selection, cfg.search.primary, cfg.search.resolved_mode, data.n_labels)


def start_projections(jobs: list[Any], cache_dir: Path | None, started: dict | None = None) -> dict:
    """Start the UMAPs and t-SNEs the figures after the sweep will draw, side by side as Ray tasks (a CPU each).

    One after another in the driver they were a large share of a sweep's time
    (bench/sweep_overhead.py). ``jobs`` are :data:`musicvae.reporting.trial_projection.Projection`s;
    ``started`` holds those already running (a job asked for twice runs once).
    Nothing without a cache (a remote cache_dir): the figures compute their own.
    Returns ``started`` with these, for :func:`store_projections`.
    """
    import ray

    from musicvae.reporting.projection import project

    started = {} if started is None else started
    if cache_dir is None:
        return started
    task = ray.remote(num_cpus=1)(project)
    for z, method, seed in jobs:
        key = (hashlib.blake2b(z.tobytes(), digest_size=16).hexdigest(), method, seed)
        if key not in started:
            started[key] = ((z, method, seed), task.remote(z, method, seed=seed))
    return started


def store_projections(started: dict, cache_dir: Path | None) -> None:
    """Wait for :func:`start_projections`' tasks and put their coordinates into the projection cache.

    The coordinates come back here and the driver stores them, because a task may have run on another node.
    """
    import ray

    from musicvae.reporting.trial_projection import store_projection

    if cache_dir is None or not started:
        return
    coordinates = ray.get([reference for _, reference in started.values()])
    for (job, _), coords in zip(started.values(), coordinates):
        store_projection(job, coords, cache_dir)


def run_sweep(cfg: SweepConfig, sweep_yaml: str = "", *, resume: str | None = None, address: str | None = None) -> SweepOutcome:
    """Run the whole sweep, or (``resume``: a run path from :func:`find_run`) continue an interrupted one.

    A resumed sweep keeps its Tune state (finished trials are not rerun,
    unfinished ones continue from their last checkpoint), its Optuna study
    and its MLflow parent run. The parent run ends FINISHED, or FAILED if the
    sweep itself fails. Progress goes to the console; the outcome is returned,
    and the caller says what of it to print (:meth:`SweepOutcome.summary`).
    """
    import ray

    from musicvae.tracking import runs as tracking

    start = time.perf_counter()
    sweep_yaml = sweep_yaml or yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    started_ray = init_ray(address)
    try:
        data = load_feature_set(cfg.data)
        print(data.summary, flush=True)
        cfg = with_k(cfg, len(data.track_ids))
        run_name = resume.rstrip("/").rsplit("/", 1)[-1] if resume else f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        parent = parent_run.open_parent_run(cfg, data, sweep_yaml, resume, run_name)
        status = "FAILED"
        try:
            tuner, run_path = restore_tuner(cfg, data, parent, resume) if resume else new_tuner(cfg, data, parent, run_name, sweep_yaml)
            print(
                f"Ray results: {run_path}\nIf interrupted, continue with: "
                f"musicvae sweep --resume {run_name} --storage {locations.storage_root(cfg.storage_path)}",
                flush=True,
            )
            results = fit_settled(tuner, run_path, build_trainable(cfg, data, run_name), cfg.trials.max_retries)
            outcome = conclude(cfg, data, parent, results, run_name)
            status = "FINISHED"
        finally:
            tracking.close_unfinished_children(parent.client, parent.experiment_id, parent.run_id)
            parent.client.set_terminated(parent.run_id, status=status)
    finally:
        if started_ray:
            ray.shutdown()
    return dataclasses.replace(outcome, seconds=time.perf_counter() - start, run_path=run_path)


def new_tuner(cfg: SweepConfig, data: FeatureSet, parent: parent_run.ParentRun, run_name: str, sweep_yaml: str) -> tuple[Any, str]:
    """A fresh sweep's Tuner (MLflow callback, and the progress line unless -v) and its run path, where the sweep file
    and the parent run's address are written for ``--resume`` and ``musicvae report``."""
    from musicvae.tracking import trial_tracking
    from musicvae.tune.progress import SweepProgress

    callbacks = [trial_tracking.MLflowTrialCallback(parent.uri, parent.experiment_id, parent.run_id, cfg.name)]
    if not console.verbose():
        callbacks.append(SweepProgress(cfg.num_samples, cfg.search.primary, cfg.search.resolved_mode))
    tuner = build_tuner(cfg, data, callbacks, run_name)
    run_path = f"{locations.storage_root(cfg.storage_path).rstrip('/')}/{run_name}"
    locations.write_text(f"{run_path}/{locations.SWEEP_FILE}", sweep_yaml)
    locations.write_text(f"{run_path}/{locations.RUN_FILE}", json.dumps({"tracking_uri": parent.uri, "parent_run_id": parent.run_id}))
    return tuner, run_path


def restore_tuner(cfg: SweepConfig, data: FeatureSet, parent: parent_run.ParentRun, resume: str) -> tuple[Any, str]:
    """An interrupted sweep's Tuner, restored; the MLflow runs of trials Tune forgot are deleted, and what the crash
    (or a tracking outage) kept from MLflow is logged again from Tune's state."""
    from ray import tune

    from musicvae.tracking import runs as tracking
    from musicvae.tracking import trial_tracking

    _tune_environment()
    run_name = resume.rstrip("/").rsplit("/", 1)[-1]
    tuner = tune.Tuner.restore(resume, build_trainable(cfg, data, run_name), resume_unfinished=True, resume_errored=True)
    known = {tracking.trial_id_of(Path(r.path).name) for r in tuner.get_results() if r.path}
    forgotten = tracking.remove_forgotten_children(parent.client, parent.experiment_id, parent.run_id, known)
    if forgotten:
        print(f"{forgotten} trial(s) began after Tune's last snapshot before the crash; their partial runs were deleted", flush=True)
    synced = _sync(resume, trial_tracking.MLflowTrialCallback(parent.uri, parent.experiment_id, parent.run_id, cfg.name))
    if any(synced.values()):
        print("Re-logged to MLflow from Tune's state: " + ", ".join(f"{n} {what}" for what, n in synced.items()), flush=True)
    return tuner, resume


def result_tables(cfg: SweepConfig, results: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, str, dict[str, str]]:
    """The finished sweep's trial table, its per-method table, the Pareto front (multi-objective sweeps), the leaderboard
    text and the files the parent run gets."""
    metric, mode = cfg.search.primary, cfg.search.resolved_mode
    table = leaderboard(results, metric, mode)
    methods = method_table(table, metric, mode)
    report = format_leaderboard(table)
    if len(methods) and methods["n"].max() > 1:  # seeds were repeated: the per-method view is the one to read
        report += "\n\nPer method, mean ± std over seeds:\n\n" + format_methods(methods)
    front = None
    texts = {"leaderboard.csv": table.to_csv(index=False), "methods.csv": methods.to_csv(index=False)}
    if cfg.search.multi_objective:
        front = pareto_front(methods, cfg.search.metrics, cfg.search.modes)
        report += f"\n\nPareto front over {', '.join(cfg.search.metrics)} (method means):\n\n" + format_methods(front)
        texts["pareto.csv"] = front.to_csv(index=False)
    return table, methods, front, report, texts


def conclude(cfg: SweepConfig, data: FeatureSet, parent: parent_run.ParentRun, results: Any, run_name: str) -> SweepOutcome:
    """After the trials: the tables, the label-free selection, the champion registered, the figures on the parent run,
    and the trials' checkpoints and the sweep's trained models cleared away."""
    from musicvae.reporting import summary, trial_projection
    from musicvae.tracking import runs as tracking

    client = parent.client
    table, methods, front, report, texts = result_tables(cfg, results)
    checkpoints = {Path(r.path).name: r.checkpoint for r in results if r.path and r.checkpoint}
    projections = Path(root) / "projections" if (root := projection_cache(cfg)) else None  # the trials' own cache
    # The β grid's projections need no selection: they run beside it, which is the driver's alone.
    beta_grid = summary.beta_grid_projections(table, methods, checkpoints, cfg.trials.figure_points) if cfg.trials.beta_grid else []
    ahead = start_projections(beta_grid, projections)
    selection = select_sweep(cfg, table, checkpoints, data)
    methods = selection.ranked(methods)  # every table and figure after this in the selection's order, the winner first
    report += "\n\n" + selection.summary()
    texts.update({"leaderboard.txt": report, "selection.csv": selection.scores.to_csv(index=False), "methods.csv": methods.to_csv(index=False)})
    tracking.log_summary(client, parent.run_id, {**parent_run.summary_metrics(table, methods), **parent_run.selection_metrics(selection)}, texts)
    tracking.tag_selection(client, parent.run_id, selection, cfg.description)
    registered = register_champion(cfg, parent, table, selection, data)
    selected = trial_projection.selected_projections(table, selection, checkpoints, cfg.trials)
    store_projections(start_projections(selected, projections, ahead), projections)
    trial_projection.project_selected(parent, table, selection, checkpoints, cfg.trials, projections)  # the trials the report shows
    with tempfile.TemporaryDirectory() as figures:
        summary.sweep_figures(table, methods, checkpoints, data, Path(figures), cfg.name, cfg.trials.figure_points, cfg.trials.beta_grid, projections)
        client.log_artifacts(parent.run_id, figures, "figures")
    prune_checkpoints(results)
    if store := models_store(cfg, run_name):
        shutil.rmtree(store, ignore_errors=True)  # every trial has its model in its checkpoint and its MLflow run
    ids = {"parent_run_id": parent.run_id, "tracking_uri": parent.uri, "experiment_id": parent.experiment_id, "experiment": cfg.tracking.experiment}
    return SweepOutcome(table, methods, seconds=0.0, pareto=front, selection=selection, registered=registered, name=cfg.name, **ids)


def _fit(line: str, width: int) -> str:
    """A line of the last screen within ``width`` columns: wrapped, its continuation indented; a line that fits is left as it is."""
    return line if len(line) <= width else "\n".join(textwrap.wrap(line, width, subsequent_indent="    ", break_on_hyphens=False))


def register_champion(
    cfg: SweepConfig, parent: parent_run.ParentRun, table: pd.DataFrame, selection: Selection, data: FeatureSet
) -> tracking.Registered | None:
    """The selected method's pipeline (its lowest seed's trial, the one the report explores) registered as the sweep's champion,
    the oracle's beside it; None where no trial finished or the data has no pipeline (a FeatureSet built by hand)."""
    from musicvae.tracking import runs as tracking

    if selection.winner is None or data.preprocessing is None:
        return None
    run_ids = tracking.trial_run_ids(parent.client, parent.experiment_id, parent.run_id)
    roles = {"selected": selection.winner, **({"oracle": selection.oracle} if selection.oracle else {})}
    runs = {role: run_ids.get(tracking.trial_id_of(method_trial(table, method)["trial"])) for role, method in roles.items()}
    runs = {role: run for role, run in runs.items() if run and any(a.path == "pipeline" for a in parent.client.list_artifacts(run))}
    if runs.get("selected") is None:  # the pick's trial has no pipeline (pipeline.txt in its run says why)
        return None
    return tracking.register_pipelines(parent.client, cfg.name, runs, selection.stable)
