"""A sweep: Ray Tune runs the trials, Optuna picks their configurations, MLflow records them.

Flow of :func:`run_sweep`::

    sweep file -> features (once, into Ray's object store) -> Tuner(OptunaSearch)
        -> trials (musicvae.trial.run_trial, reporting every epoch, checkpointing)
        -> MLflow parent + child runs (metrics, figures, embeddings)
        -> leaderboard (per trial, and per method over seeds) + summary figures
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musicvae.config import K_CLUSTERERS, VARIATIONAL_MODELS, ResourcesConfig, SweepConfig, TrialParams, TrialsConfig, choices, expand_path
from musicvae.dataset import FeatureSet, load_feature_set
from musicvae.leaderboard import METRICS, format_leaderboard, format_methods, leaderboard, method_table, selection_summary
from musicvae.search import describe_space, optuna_search


def describe_plan(cfg: SweepConfig) -> str:
    """What ``--dry-run`` prints: everything the sweep would do, nothing run."""
    source = cfg.data.source
    source_args = ", ".join(f"{k}={v}" for k, v in source.model_dump(exclude={"kind"}).items() if v is not None)
    audio = cfg.data.audio
    search = cfg.search
    label_note = "uses labels: oracle selection" if search.uses_labels else "label-free"
    lines = [
        f"Sweep '{cfg.name}'" + (f": {cfg.description}" if cfg.description else ""),
        f"Data: {source.kind} ({source_args})",
    ]
    if source.kind not in ("table", "fma_features"):
        lines.append(
            f"Features: {', '.join(audio.features)}; MFCC {audio.stats} of {audio.n_mfcc} coefficients, {audio.duration or 'whole'} s "
            f"from {audio.offset} s at {audio.sample_rate} Hz (Ray Data), cache {cfg.data.cache_dir}"
        )
    if cfg.data.text is not None:
        lines.append(f"Text: {cfg.data.text.method} embeddings of {', '.join(cfg.data.text.columns)}" + (" + lyrics" if cfg.data.text.lyrics else ""))
    trials = cfg.trials
    lines += [
        f"Standardise features: {cfg.data.standardize}",
        "Search space (Optuna define-by-run):",
        *describe_space(cfg.space),
        f"Search: OptunaSearch, {search.sampler} sampler, seed {search.seed}; objective {search.metric} "
        f"({search.resolved_mode}, {label_note})",
        f"Budget: {cfg.num_samples} trials, at most {search.max_concurrent_trials} at a time",
        f"Resources per trial: {cfg.resources.cpus_per_trial:g} CPU, {cfg.resources.gpus_per_trial:g} GPU (device {cfg.resources.device})",
        f"Per trial: figures {', '.join(trials.figures) or 'none'}; checkpoint every {trials.checkpoint_every} epochs",
        f"Tracking: {cfg.tracking.resolved_uri()} (experiment '{cfg.tracking.experiment}')",
        f"Ray results: {expand_path(cfg.storage_path).resolve()}",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ the trial


def trial_title(params: TrialParams) -> str:
    """A figure title that says what was run: 'vae β=4 latent 32 + kmeans, seed 1'."""
    beta = f" β={params.beta:.3g}" if params.model in VARIATIONAL_MODELS else ""
    latent = f" latent {params.latent_dim}" if params.model != "raw" else ""
    return f"{params.model}{beta}{latent} + {params.clusterer}, seed {params.seed}"


def tune_trainable(config: dict[str, Any], data: FeatureSet, trials: TrialsConfig, resources: ResourcesConfig, cache_dir: str | None = None) -> None:
    """A Tune function trainable: per-epoch losses with periodic checkpoints, then the metrics and artifacts.

    A restarted trial (a retry after a crash, or a resumed sweep) finds its
    last checkpoint with ``tune.get_checkpoint()`` and continues training
    from that epoch instead of starting over.
    """
    import torch
    from ray import tune

    from musicvae.training import TrainingState
    from musicvae.trial import run_trial, write_artifacts

    torch.set_num_threads(max(1, int(resources.cpus_per_trial)))
    params = TrialParams(**config)
    resume = None
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as directory:
            resume = TrainingState.load(directory)

    def on_epoch(stats: Any, state: TrainingState | None) -> None:
        report = {"epoch": stats.epoch, "train_loss": stats.train_loss, "val_loss": stats.val_loss}
        report.update(reconstruction=stats.reconstruction, kl=stats.kl, beta_now=stats.beta)
        if state is None:
            tune.report(report)
            return
        with tempfile.TemporaryDirectory() as directory:
            state.save(directory)
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory))

    result = run_trial(
        params,
        data,
        on_epoch=on_epoch,
        device=resources.device,
        resume=resume,
        checkpoint_every=trials.checkpoint_every,
        silhouette_sample=trials.silhouette_sample,
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
        tune.report({**result.metrics, **timing, "notes": result.notes}, checkpoint=tune.Checkpoint.from_directory(directory))


# ---------------------------------------------------------------------- run it


def trial_name(trial: Any) -> str:
    """Readable trial (and MLflow run) names: vae-kmeans-1a2b3c4d."""
    config = trial.config
    return f"{config.get('model', 'vae')}-{config.get('clusterer', 'kmeans')}-{trial.trial_id}"


@dataclass(frozen=True)
class SweepOutcome:
    leaderboard: pd.DataFrame
    methods: pd.DataFrame
    parent_run_id: str
    tracking_uri: str
    experiment_id: str
    seconds: float


def _init_ray() -> bool:
    """Start (or join, with RAY_ADDRESS) a Ray cluster; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=True, include_dashboard=False)
    return True


def _ui_command(uri: str) -> str:
    if not uri.startswith("sqlite:"):
        return f"open {uri} in a browser"
    mlflow_bin = Path(sys.executable).parent / "mlflow"  # works without activating the venv
    return f"{mlflow_bin if mlflow_bin.exists() else 'mlflow'} ui --backend-store-uri {uri}"


def check_clusters(cfg: SweepConfig, data: FeatureSet) -> None:
    """k comes from the labels unless the space sets it; fail before any trial if neither can."""
    if "n_clusters" in cfg.space or not any(c in K_CLUSTERERS for c in choices(cfg.space, "clusterer")):
        return
    if data.n_labels is None:
        raise ValueError("the data has no labels: set space.n_clusters in the sweep file")
    if data.n_labels < 2:
        raise ValueError(f"the data has a single label ({data.label_names[0]}); set space.n_clusters in the sweep file")


def build_tuner(cfg: SweepConfig, data: FeatureSet, callbacks: list) -> Any:
    from ray import tune

    # Trials report losses every epoch and the clustering metrics (the
    # objective) once at the end; Tune's strict check wants the objective in
    # every result. The metric name itself is validated by the sweep file's
    # schema, which is what that check guards against.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Keeping only the last checkpoints makes Tune snapshot its experiment state
    # whenever one is deleted (so a resume never points at a deleted one); with
    # short trials that is often, and Tune warns each time. The snapshot is cheap.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    resources = cfg.resources
    trainable = tune.with_resources(
        # The data goes to the object store once; every trial reads it from there.
        tune.with_parameters(tune_trainable, data=data, trials=cfg.trials, resources=resources, cache_dir=str(expand_path(cfg.data.cache_dir).resolve())),
        {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial},
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=optuna_search(cfg.space, cfg.search),
            num_samples=cfg.num_samples,
            max_concurrent_trials=cfg.search.max_concurrent_trials,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
            # A worker process serves trial after trial: torch, librosa and UMAP's
            # JIT-compiled code (~20 s to compile) are loaded once per worker, not once per trial.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(expand_path(cfg.storage_path).resolve()),
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=0),  # a failed trial is recorded, not retried
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),  # the last training state, and the final artifacts
            verbose=1,
        ),
    )


def _sweep_params(cfg: SweepConfig, data: FeatureSet) -> dict[str, Any]:
    return {
        "sweep": cfg.name,
        "source": cfg.data.source.kind,
        "n_tracks": len(data.track_ids),
        "n_features": data.features.shape[1],
        "n_labels": data.n_labels or 0,
        "n_skipped": len(data.skipped),
        "objective": cfg.search.metric,
        "mode": cfg.search.resolved_mode,
        "sampler": cfg.search.sampler,
        "num_samples": cfg.num_samples,
        "max_concurrent_trials": cfg.search.max_concurrent_trials,
    }


def _summary_metrics(table: pd.DataFrame, methods: pd.DataFrame) -> dict[str, float]:
    ok = table[table["status"] == "OK"]
    metrics = {"n_trials_ok": float(len(ok)), "n_trials_failed": float(len(table) - len(ok))}
    if len(methods):
        best = methods.iloc[0]
        metrics.update({f"best_{m}": float(best[f"{m}_mean"]) for m in METRICS if f"{m}_mean" in best and pd.notna(best[f"{m}_mean"])})
    return metrics


def run_sweep(cfg: SweepConfig, sweep_yaml: str = "") -> SweepOutcome:
    """Run the whole sweep; the MLflow parent run ends FINISHED, or FAILED if the sweep itself fails."""
    import ray

    from musicvae import tracking
    from musicvae.summary import sweep_figures

    start = time.perf_counter()
    started_ray = _init_ray()
    try:
        data = load_feature_set(cfg.data)
        print(data.summary, flush=True)
        check_clusters(cfg, data)

        uri = cfg.tracking.resolved_uri()
        client, experiment_id = tracking.connect(uri, cfg.tracking.experiment)
        parent = tracking.start_parent_run(client, experiment_id, cfg.name, _sweep_params(cfg, data), sweep_yaml or cfg.model_dump_json(indent=2))
        client.log_text(parent, data.summary, "extraction.txt")
        status = "FAILED"
        try:
            callback = tracking.MLflowTrialCallback(uri, experiment_id, parent, cfg.name)
            results = build_tuner(cfg, data, [callback]).fit()
            metric, mode = cfg.search.metric, cfg.search.resolved_mode
            table = leaderboard(results, metric, mode)
            methods = method_table(table, metric, mode)
            report = format_leaderboard(table)
            if len(methods) and methods["n"].max() > 1:  # seeds were repeated: the per-method view is the one to read
                report += "\n\nPer method, mean ± std over seeds:\n\n" + format_methods(methods)
            report += "\n\n" + selection_summary(table, metric, mode)
            tracking.log_summary(
                client,
                parent,
                _summary_metrics(table, methods),
                {"leaderboard.csv": table.to_csv(index=False), "methods.csv": methods.to_csv(index=False), "leaderboard.txt": report},
            )
            checkpoints = {Path(r.path).name: r.checkpoint for r in results if r.path and r.checkpoint}
            with tempfile.TemporaryDirectory() as figures:
                sweep_figures(table, methods, checkpoints, data, Path(figures), cfg.name, cfg.trials.figure_points)
                client.log_artifacts(parent, figures, "figures")
            status = "FINISHED"
        finally:
            tracking.close_unfinished_children(client, experiment_id, parent)
            client.set_terminated(parent, status=status)
    finally:
        if started_ray:
            ray.shutdown()

    seconds = time.perf_counter() - start
    print(f"\nLeaderboard (objective: {cfg.search.metric}, {cfg.search.resolved_mode})\n\n{report}")
    print(f"\nSweep finished in {seconds:.1f} s. MLflow parent run {parent} in experiment '{cfg.tracking.experiment}'.")
    print(f"Open the MLflow UI: {_ui_command(uri)}")
    return SweepOutcome(table, methods, parent, uri, experiment_id, seconds)
