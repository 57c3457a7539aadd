"""A sweep: Ray Tune runs the trials, Optuna picks their configurations, MLflow records them.

Flow of :func:`run_sweep`::

    sweep file -> features (once, into Ray's object store) -> Tuner(OptunaSearch)
        -> trials (musicvae.trial.run_trial, reporting every epoch, checkpointing)
        -> MLflow parent + child runs (metrics, figures, embeddings)
        -> leaderboard (per trial, and per method over seeds) + summary figures
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from musicvae import console
from musicvae.config import ResourcesConfig, SelectionConfig, SweepConfig, TrackingConfig, TrialsConfig
from musicvae.dataset import FeatureSet, load_feature_set
from musicvae.features import store
from musicvae.leaderboard import METRICS, format_leaderboard, format_methods, leaderboard, method_table, pareto_front
from musicvae.params import K_CLUSTERERS, VARIATIONAL_MODELS, TrialParams, choices
from musicvae.search import describe_space, optuna_search
from musicvae.selection import Selection, select_methods


def describe_plan(cfg: SweepConfig) -> str:
    """What ``--dry-run`` prints: everything the sweep would do, nothing run."""
    source = cfg.data.source
    source_args = ", ".join(f"{k}={v}" for k, v in source.model_dump(exclude={"kind"}).items() if v is not None)
    audio = cfg.data.audio
    search = cfg.search
    label_note = "uses labels: oracle selection" if search.uses_labels else "label-free"
    lines = [
        f"Sweep '{cfg.name}'" + (f": {cfg.description}" if cfg.description else ""),
        f"Data: {source.kind} ({source_args}); features standardised: {'yes' if cfg.data.standardize else 'no'}",
    ]
    if source.kind not in ("table", "fma_features"):
        lines.append(
            f"Features: {', '.join(audio.features)}; MFCC {audio.stats} of {audio.n_mfcc} coefficients, {audio.duration or 'whole'} s "
            f"from {audio.offset} s at {audio.sample_rate} Hz (Ray Data), cache {cfg.data.cache_dir}"
        )
    if cfg.data.text is not None:
        lines.append(f"Text: {cfg.data.text.method} embeddings of {', '.join(cfg.data.text.columns)}" + (" + lyrics" if cfg.data.text.lyrics else ""))
    if cfg.data.group_by:
        lines.append(f"Metadata groups: embeddings pooled by {' + '.join(cfg.data.group_by)} before clustering (metadata, not labels)")
    trials = cfg.trials
    lines += [
        "Search space (Optuna define-by-run):",
        *describe_space(cfg.space),
        f"Search: OptunaSearch, {search.sampler} sampler, seed {search.seed}; "
        + ("objectives " if search.multi_objective else "objective ")
        + ", ".join(f"{m} ({mode})" for m, mode in zip(search.metrics, search.modes))
        + f", {label_note}"
        + (f"; {len(search.points_to_evaluate)} fixed point(s) first" if search.points_to_evaluate else ""),
        "Early stopping: "
        + (
            f"ASHA on {cfg.scheduler.metric} per epoch (grace {cfg.scheduler.grace_period} epochs, keep 1/{cfg.scheduler.reduction_factor:g} per rung)"
            if cfg.scheduler.kind == "asha"
            else "off (every trial runs to the end)"
        ),
        f"Selection: the '{cfg.selection.rule}' rule (label-free), every clustering scored in the inputs and each distinct embedding "
        f"on {cfg.selection.sample} seeded rows; a winner less stable than {cfg.selection.min_stability:g} is reported as no stable clustering",
        f"Budget: {cfg.num_samples} trials, at most {search.max_concurrent_trials} at a time"
        + (f", {search.time_budget_s:g} s in all" if search.time_budget_s else "")
        + f"; per trial {cfg.resources.cpus_per_trial:g} CPU, {cfg.resources.gpus_per_trial:g} GPU (device {cfg.resources.device})",
        f"Per trial: figures {', '.join(trials.figures) or 'none'}; checkpoint every {trials.checkpoint_every} epochs; "
        f"{trials.max_retries} restart(s) if its worker dies",
        f"Tracking: {cfg.tracking.resolved_uri()} (experiment '{cfg.tracking.experiment}'); Ray results: {storage_root(cfg.storage_path)}",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ the trial


def trial_title(params: TrialParams) -> str:
    """A figure title that says what was run: 'vae β=4 latent 32 + kmeans, seed 1'."""
    beta = f" β={params.beta:.3g}" if params.model in VARIATIONAL_MODELS else ""
    latent = f" latent {params.latent_dim}" if params.model != "raw" else ""
    manifold = f" → UMAP {params.manifold_dim}" if params.manifold == "umap" else ""
    return f"{params.model}{beta}{latent}{manifold} + {params.clusterer}, seed {params.seed}"


class StorageError(OSError):
    """A checkpoint could not be written to the sweep's storage (e.g. the disk is full): not the trial's failure."""


def report_checkpoint(metrics: dict[str, Any], directory: str) -> None:
    """``tune.report`` with a checkpoint; Tune copies it to ``storage_path`` here, so a full disk raises here."""
    from ray import tune

    try:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
    except OSError as exc:
        raise StorageError(f"could not save the trial's checkpoint to the sweep's storage ({exc}); free space, then musicvae sweep --resume") from exc


def tune_trainable(
    config: dict[str, Any],
    data: FeatureSet,
    trials: TrialsConfig,
    resources: ResourcesConfig,
    cache_dir: str | None = None,
    selection: SelectionConfig | None = None,
) -> None:
    """A Tune function trainable: per-epoch losses with periodic checkpoints, then the metrics and artifacts.

    A restarted trial (a retry after a crash, or a resumed sweep) finds its
    last checkpoint with ``tune.get_checkpoint()`` and continues training
    from that epoch instead of starting over.
    """
    import ray
    import torch
    from ray import tune

    from musicvae.training import TrainingState
    from musicvae.trial import run_trial, write_artifacts

    console.quiet_libraries()  # this worker's loggers: "Checkpoint successfully created" per checkpoint, unless -v
    torch.set_num_threads(max(1, int(resources.cpus_per_trial)))
    params = TrialParams(**config)
    resume = None
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as directory:
            resume = TrainingState.load(directory)

    node = {"node_id": ray.get_runtime_context().get_node_id()}  # which machine ran it: a tag in MLflow

    def on_epoch(stats: Any, state: TrainingState | None) -> None:
        report = {**node, "epoch": stats.epoch, "train_loss": stats.train_loss, "val_loss": stats.val_loss}
        report.update(reconstruction=stats.reconstruction, kl=stats.kl, beta_now=stats.beta)
        if state is None:
            tune.report(report)
            return
        with tempfile.TemporaryDirectory() as directory:
            state.save(directory)
            report_checkpoint(report, directory)

    try:
        result = run_trial(
            params,
            data,
            on_epoch=on_epoch,
            device=resources.device,
            resume=resume,
            checkpoint_every=trials.checkpoint_every,
            silhouette_sample=trials.silhouette_sample,
            selection=selection,
            cache_dir=Path(cache_dir) / "manifolds" if cache_dir else None,
        )
        with tempfile.TemporaryDirectory() as directory:
            timing = write_artifacts(
                result,
                data,
                Path(directory) / "artifacts",
                figures=trials.figures,
                figure_points=trials.figure_points,
                seed=params.seed,
                title=trial_title(params),
                cache_dir=Path(cache_dir) / "projections" if cache_dir else None,
            )
            report_checkpoint({**result.metrics, **timing, **node, "notes": result.notes}, directory)
    except StorageError:
        raise  # the sweep's storage, not the trial: Tune restarts the trial from its last checkpoint
    except Exception as exc:  # noqa: BLE001 - any error of the trial's own code is its result
        # Seeded trials fail the same way every time (a NaN loss, k > n): recorded as
        # failed, not raised, so FailureConfig's retries are kept for what a retry can
        # fix: a worker or node that died. Tune's own errors are not caught here.
        traceback.print_exc()
        tune.report({**node, "failed": 1, "error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc()[-20000:]})


# ---------------------------------------------------------------------- run it


def trial_name(trial: Any) -> str:
    """Readable trial (and MLflow run) names: vae-kmeans-1a2b3c4d."""
    config = trial.config
    return f"{config.get('model', 'vae')}-{config.get('clusterer', 'kmeans')}-{trial.trial_id}"


def trial_id_of(name: str) -> str:
    """The Tune trial id in a :func:`trial_name`."""
    return name.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class SweepOutcome:
    leaderboard: pd.DataFrame
    methods: pd.DataFrame
    parent_run_id: str
    tracking_uri: str
    experiment_id: str
    seconds: float
    run_path: str = ""  # Tune's experiment folder (or URI): what --resume continues
    pareto: pd.DataFrame | None = None


def init_ray(address: str | None = None) -> bool:
    """Start a local Ray, or join a cluster (``address``, else RAY_ADDRESS); True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address=address or os.environ.get("RAY_ADDRESS"),
        log_to_driver=True,  # a trial's errors and warnings reach the console; libraries' chatter is lowered at its source
        logging_level=console.ray_logging_level(),
        runtime_env={"env_vars": console.worker_env()},  # -v reaches the trials on every node
        include_dashboard=False,
    )
    console.quiet_libraries()
    return True


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


def check_clusters(cfg: SweepConfig, data: FeatureSet) -> None:
    """k comes from the labels unless the space sets it; fail before any trial if neither can."""
    if "n_clusters" in cfg.space or not any(c in K_CLUSTERERS for c in choices(cfg.space, "clusterer")):
        return
    if data.n_labels is None:
        raise ValueError("the data has no labels: set space.n_clusters in the sweep file")
    if data.n_labels < 2:
        raise ValueError(f"the data has a single label ({data.label_names[0]}); set space.n_clusters in the sweep file")


# ------------------------------------------------------------- storage and resume

SWEEP_FILE = "musicvae-sweep.yaml"  # the sweep file, kept beside Tune's state so --resume needs nothing else
RUN_FILE = "musicvae-run.json"  # where the sweep's MLflow parent run lives
RUN_SUFFIX = re.compile(r"-\d{8}-\d{6}$")


def storage_root(path: str) -> str:
    """Tune's storage as Tune takes it: a URI (s3://, gs://, ...) as is, a folder resolved."""
    return store.absolute(path)


def _write_text(uri: str, text: str) -> None:
    fs, path = store.resolve(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as stream:
        stream.write(text.encode())


def _read_text(uri: str) -> str:
    fs, path = store.resolve(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read().decode()


def find_run(storage: str, name: str) -> str:
    """The Tune experiment to resume: ``name`` is a run folder (``quickstart-20261125-140102``) or a sweep name (its latest run)."""
    import pyarrow.fs

    root = storage_root(storage)
    fs, path = store.resolve(root)
    try:
        folders = [info.base_name for info in fs.get_file_info(pyarrow.fs.FileSelector(path)) if info.type == pyarrow.fs.FileType.Directory]
    except (FileNotFoundError, OSError):
        folders = []
    runs = [f for f in folders if fs.get_file_info(f"{path}/{f}/{SWEEP_FILE}").type == pyarrow.fs.FileType.File]  # musicvae's, not any Tune run
    matches = sorted(f for f in runs if name in (f, RUN_SUFFIX.sub("", f)))  # the timestamp suffix sorts by time
    if not matches:
        known = sorted({RUN_SUFFIX.sub("", f) for f in runs})
        raise ValueError(f"no sweep run named '{name}' in {root} (sweeps there: {', '.join(known) or 'none'})")
    return f"{root.rstrip('/')}/{matches[-1]}"


def sync_run(run_path: str) -> dict[str, int]:
    """``musicvae sync``: re-log to MLflow whatever this sweep run's Tune state holds that MLflow lacks (:func:`trial_tracking.sync_trials`)."""
    from musicvae import tracking, trial_tracking
    from musicvae.config import parse_sweep

    cfg = parse_sweep(yaml.safe_load(load_run_sweep(run_path)), origin=f"{run_path}/{SWEEP_FILE}")
    saved = json.loads(_read_text(f"{run_path}/{RUN_FILE}"))
    _, experiment_id = tracking.connect(saved["tracking_uri"], cfg.tracking.experiment)
    return _sync(run_path, trial_tracking.MLflowTrialCallback(saved["tracking_uri"], experiment_id, saved["parent_run_id"], cfg.name))


def _sync(run_path: str, callback: Any) -> dict[str, int]:
    from ray.tune import ExperimentAnalysis

    from musicvae import trial_tracking

    analysis = ExperimentAnalysis(run_path)
    return trial_tracking.sync_trials(callback, analysis.trials, analysis.trial_dataframes)


def load_run_sweep(run_path: str) -> str:
    """The sweep file a run was started with (to resume it without the original file)."""
    return _read_text(f"{run_path}/{SWEEP_FILE}")


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
    return None if store.is_uri(cfg.data.cache_dir) else store.absolute(cfg.data.cache_dir)


def build_trainable(cfg: SweepConfig, data: FeatureSet) -> Any:
    from ray import tune

    resources = cfg.resources
    return tune.with_resources(
        # The data goes to the object store once; every trial reads it from there.
        tune.with_parameters(tune_trainable, data=data, trials=cfg.trials, resources=resources, cache_dir=projection_cache(cfg), selection=cfg.selection),
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
    # prints nothing, and our progress bar (musicvae.progress) takes its place.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "1" if console.verbose() else "0"


def build_tuner(cfg: SweepConfig, data: FeatureSet, callbacks: list, run_name: str | None = None) -> Any:
    from ray import tune

    _tune_environment()
    return tune.Tuner(
        build_trainable(cfg, data),
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
            name=run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=storage_root(cfg.storage_path),
            callbacks=callbacks,
            # Restarts of a trial whose worker died; the trial's own errors are results (tune_trainable).
            failure_config=tune.FailureConfig(max_failures=cfg.trials.max_retries),
            # Every checkpoint is kept while the sweep runs, and all but each trial's last are pruned once it ends
            # (prune_checkpoints). With num_to_keep, Tune deletes a checkpoint as soon as a newer one is registered,
            # before its next experiment snapshot records the newer one: a driver killed in between resumes a trial
            # from a checkpoint that no longer exists ("Could not recover from checkpoint"), and the trial fails.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            verbose=console.tune_verbosity(),  # 0: our progress bar (musicvae.progress) instead of Tune's tables
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
    """The label-free choice over the finished trials, each clustering scored in the sweep's shared spaces (musicvae.selection)."""
    from musicvae.trial import read_embedding

    clusters, embeddings = {}, {}
    for trial in table.loc[table["status"] == "OK", "trial"]:
        if trial in checkpoints:
            with checkpoints[trial].as_directory() as directory:
                clusters[trial], embeddings[trial] = read_embedding(Path(directory) / "artifacts")
    return select_methods(table, clusters, embeddings, data.features, cfg.selection, cfg.search.primary, cfg.search.resolved_mode)


def selection_metrics(selection: Selection) -> dict[str, float]:
    """The parent run's selection metrics: the winner's stability and scores, and (with labels) its ARI, NMI and regret."""
    if selection.winner is None:
        return {}
    win = selection.row(selection.winner)
    metrics = {
        "selection_seconds": selection.seconds,
        "selection_spaces": float(selection.n_spaces),
        "selection_stable": float(selection.stable),
        "selected_stability": float(win["stability"]),
    }
    if selection.oracle is not None:
        metrics.update(selected_ari=float(win["ari"]), selected_nmi=float(win["nmi"]), selection_regret=selection.regret(selection.winner))
    return metrics


def _sweep_params(cfg: SweepConfig, data: FeatureSet) -> dict[str, Any]:
    return {
        "sweep": cfg.name,
        "source": cfg.data.source.kind,
        "n_tracks": len(data.track_ids),
        "n_features": data.features.shape[1],
        "n_labels": data.n_labels or 0,
        "n_skipped": len(data.skipped),
        "group_by": ",".join(cfg.data.group_by or []) or "none",  # metadata pooled into the embeddings, said where results are read
        "objective": ",".join(cfg.search.metrics),
        "mode": ",".join(cfg.search.modes),
        "sampler": cfg.search.sampler,
        "scheduler": cfg.scheduler.kind,
        "selection_rule": cfg.selection.rule,
        "selection_sample": cfg.selection.sample,
        "selection_min_stability": cfg.selection.min_stability,
        "num_samples": cfg.num_samples,
        "max_concurrent_trials": cfg.search.max_concurrent_trials,
        "cpus_per_trial": cfg.resources.cpus_per_trial,
        "gpus_per_trial": cfg.resources.gpus_per_trial,
    }


def _summary_metrics(table: pd.DataFrame, methods: pd.DataFrame) -> dict[str, float]:
    metrics = {f"n_trials_{status.lower()}": float((table["status"] == status).sum()) for status in ("OK", "FAILED", "STOPPED")}
    if len(methods):
        best = methods.iloc[0]
        metrics.update({f"best_{m}": float(best[f"{m}_mean"]) for m in METRICS if f"{m}_mean" in best and pd.notna(best[f"{m}_mean"])})
    return metrics


@dataclass(frozen=True)
class _Parent:
    client: Any
    experiment_id: str
    run_id: str
    uri: str


def _open_parent(cfg: SweepConfig, data: FeatureSet, sweep_yaml: str, run_path: str | None, run_name: str) -> _Parent:
    """The sweep's MLflow parent run: a new one, or (resuming) the one the run was started with, set running again."""
    from musicvae import tracking

    if run_path is not None:
        saved = json.loads(_read_text(f"{run_path}/{RUN_FILE}"))
        client, experiment_id = tracking.connect(saved["tracking_uri"], cfg.tracking.experiment)
        client.update_run(saved["parent_run_id"], status="RUNNING")
        return _Parent(client, experiment_id, saved["parent_run_id"], saved["tracking_uri"])
    uri = cfg.tracking.resolved_uri()
    client, experiment_id = tracking.connect(uri, cfg.tracking.experiment)
    run_id = tracking.start_parent_run(client, experiment_id, cfg.name, _sweep_params(cfg, data), sweep_yaml, run_name)
    client.log_text(run_id, data.summary, "extraction.txt")
    with tempfile.TemporaryDirectory() as folder:  # for the report's explorer: titles, artists, audio files
        data.track_table().to_parquet(Path(folder) / "tracks.parquet", index=False)
        client.log_artifact(run_id, str(Path(folder) / "tracks.parquet"))
    return _Parent(client, experiment_id, run_id, uri)


def run_sweep(cfg: SweepConfig, sweep_yaml: str = "", *, resume: str | None = None, address: str | None = None) -> SweepOutcome:
    """Run the whole sweep, or (``resume``: a run path from :func:`find_run`) continue an interrupted one.

    A resumed sweep keeps its Tune state (finished trials are not rerun,
    unfinished ones continue from their last checkpoint), its Optuna study
    and its MLflow parent run. The parent run ends FINISHED, or FAILED if the
    sweep itself fails.
    """
    import ray
    from ray import tune

    from musicvae import tracking, trial_tracking
    from musicvae.progress import SweepProgress
    from musicvae.summary import sweep_figures

    start = time.perf_counter()
    sweep_yaml = sweep_yaml or yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    started_ray = init_ray(address)
    try:
        data = load_feature_set(cfg.data)
        print(data.summary, flush=True)
        check_clusters(cfg, data)

        run_name = resume.rstrip("/").rsplit("/", 1)[-1] if resume else f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        parent = _open_parent(cfg, data, sweep_yaml, resume, run_name)
        client = parent.client
        status = "FAILED"
        try:
            if resume:
                _tune_environment()
                tuner = tune.Tuner.restore(resume, build_trainable(cfg, data), resume_unfinished=True, resume_errored=True)
                run_path = resume
                known = {trial_id_of(Path(r.path).name) for r in tuner.get_results() if r.path}
                forgotten = tracking.remove_forgotten_children(client, parent.experiment_id, parent.run_id, known)
                if forgotten:
                    print(f"{forgotten} trial(s) began after Tune's last snapshot before the crash; their partial runs were deleted", flush=True)
                # What the crash (or a tracking outage) kept from MLflow, into the parent run opened above.
                synced = _sync(run_path, trial_tracking.MLflowTrialCallback(parent.uri, parent.experiment_id, parent.run_id, cfg.name))
                if any(synced.values()):
                    print("Re-logged to MLflow from Tune's state: " + ", ".join(f"{n} {what}" for what, n in synced.items()), flush=True)
            else:
                callbacks = [trial_tracking.MLflowTrialCallback(parent.uri, parent.experiment_id, parent.run_id, cfg.name)]
                if not console.verbose():
                    callbacks.append(SweepProgress(cfg.num_samples, cfg.search.primary, cfg.search.resolved_mode))
                tuner = build_tuner(cfg, data, callbacks, run_name)
                run_path = f"{storage_root(cfg.storage_path).rstrip('/')}/{run_name}"
                _write_text(f"{run_path}/{SWEEP_FILE}", sweep_yaml)
                _write_text(f"{run_path}/{RUN_FILE}", json.dumps({"tracking_uri": parent.uri, "parent_run_id": parent.run_id}))
            print(
                f"Ray results: {run_path}\nIf interrupted, continue with: musicvae sweep --resume {run_name} --storage {storage_root(cfg.storage_path)}",
                flush=True,
            )
            results = fit_settled(tuner, run_path, build_trainable(cfg, data), cfg.trials.max_retries)
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
            checkpoints = {Path(r.path).name: r.checkpoint for r in results if r.path and r.checkpoint}
            selection = select_sweep(cfg, table, checkpoints, data)
            report += "\n\n" + selection.summary()
            texts.update({"leaderboard.txt": report, "selection.csv": selection.scores.to_csv(index=False)})
            tracking.log_summary(client, parent.run_id, {**_summary_metrics(table, methods), **selection_metrics(selection)}, texts)
            tracking.tag_selection(client, parent.run_id, selection, cfg.description)
            with tempfile.TemporaryDirectory() as figures:
                projections = any(m in cfg.trials.figures for m in ("umap", "tsne"))
                sweep_figures(table, methods, checkpoints, data, Path(figures), cfg.name, cfg.trials.figure_points, projections)
                client.log_artifacts(parent.run_id, figures, "figures")
            prune_checkpoints(results)
            status = "FINISHED"
        finally:
            tracking.close_unfinished_children(client, parent.experiment_id, parent.run_id)
            client.set_terminated(parent.run_id, status=status)
    finally:
        if started_ray:
            ray.shutdown()

    seconds = time.perf_counter() - start
    print(f"\nLeaderboard (objective: {', '.join(cfg.search.metrics)}; ranked by {cfg.search.primary}, {cfg.search.resolved_mode})\n\n{report}")
    print(f"\nSweep finished in {seconds:.1f} s. MLflow parent run {parent.run_id} in experiment '{cfg.tracking.experiment}'.")
    print(f"Open the MLflow UI: {_ui_command(parent.uri, parent.experiment_id)}")
    options = "" if parent.uri == TrackingConfig().resolved_uri() else f" --tracking-uri {parent.uri}"
    options += "" if cfg.tracking.experiment == TrackingConfig().experiment else f" --experiment {cfg.tracking.experiment}"
    print(f"Explore the results (report.html: tables, charts, an embedding explorer to listen through): musicvae report {cfg.name}{options}")
    return SweepOutcome(table, methods, parent.run_id, parent.uri, parent.experiment_id, seconds, run_path, front)
