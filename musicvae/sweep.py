"""A sweep: Ray Tune runs the trials, Optuna picks their configurations, MLflow records them.

Flow of :func:`run_sweep`::

    sweep file -> features (once, into Ray's object store) -> Tuner(OptunaSearch)
        -> trials (musicvae.trial.run_trial, reporting every epoch)
        -> MLflow parent + child runs -> leaderboard
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musicvae.config import NEURAL_MODELS, NEURAL_ONLY_PARAMS, SweepConfig, TrialParams, expand_path
from musicvae.dataset import FeatureSet, load_feature_set
from musicvae.metrics import EXTERNAL, INTERNAL
from musicvae.search import describe_space, optuna_search

LEADERBOARD_PARAMS = ("model", "latent_dim", "beta", "clusterer", "seed")
LEADERBOARD_METRICS = (*INTERNAL, *EXTERNAL, "val_loss")


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
    if source.kind != "table":
        lines.append(
            f"Features: MFCC {audio.stats} of {audio.n_mfcc} coefficients, {audio.duration or 'whole'} s from {audio.offset} s "
            f"at {audio.sample_rate} Hz (Ray Data), cache {cfg.data.cache_dir}"
        )
    lines += [
        f"Standardise features: {cfg.data.standardize}",
        "Search space (Optuna define-by-run):",
        *describe_space(cfg.space),
        f"Search: OptunaSearch, {search.sampler} sampler, seed {search.seed}; objective {search.metric} "
        f"({search.resolved_mode}, {label_note})",
        f"Budget: {search.num_samples} trials, at most {search.max_concurrent_trials} at a time",
        f"Resources per trial: {cfg.resources.cpus_per_trial:g} CPU, {cfg.resources.gpus_per_trial:g} GPU",
        f"Tracking: {cfg.tracking.resolved_uri()} (experiment '{cfg.tracking.experiment}')",
        f"Ray results: {expand_path(cfg.storage_path).resolve()}",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ the trial


def tune_trainable(config: dict[str, Any], data: FeatureSet, cpus: float = 1.0) -> None:
    """A Tune function trainable: per-epoch losses, then the final metrics."""
    import torch
    from ray import tune

    from musicvae.trial import run_trial

    torch.set_num_threads(max(1, int(cpus)))
    params = TrialParams(**config)

    def on_epoch(stats: Any) -> None:
        tune.report(
            {"epoch": stats.epoch, "train_loss": stats.train_loss, "val_loss": stats.val_loss, "reconstruction": stats.reconstruction, "kl": stats.kl}
        )

    result = run_trial(params, data, on_epoch=on_epoch)
    tune.report(result.metrics)


# -------------------------------------------------------------- the leaderboard


def leaderboard(results: Any, metric: str, mode: str) -> pd.DataFrame:
    """One row per trial, best first by the objective; failed trials last."""
    defaults = TrialParams()
    rows = []
    for result in results:
        config, metrics = result.config or {}, result.metrics or {}
        neural = config.get("model", defaults.model) in NEURAL_MODELS
        row = {"trial": Path(result.path).name if result.path else "?", "status": "FAILED" if result.error else "OK"}
        row.update({p: config.get(p, getattr(defaults, p) if neural or p not in NEURAL_ONLY_PARAMS else "") for p in LEADERBOARD_PARAMS})
        row.update({m: metrics.get(m, math.nan) for m in LEADERBOARD_METRICS})
        row["seconds"] = metrics.get("time_total_s", math.nan)
        if result.error:
            row["error"] = str(result.error).strip().splitlines()[-1][:120]
        rows.append(row)
    table = pd.DataFrame(rows)
    if "error" not in table:
        table["error"] = ""
    table["error"] = table["error"].fillna("")
    table = table.sort_values(["status", metric], ascending=[False, mode == "min"], na_position="last", kind="stable")
    return table.reset_index(drop=True)


def format_leaderboard(table: pd.DataFrame) -> str:
    shown = table.drop(columns=[c for c in ("error",) if not table[c].astype(bool).any()])
    shown = shown.drop(columns=[c for c in EXTERNAL if c in shown and shown[c].isna().all()])
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")


def selection_summary(table: pd.DataFrame, metric: str) -> str:
    """The label-free winner next to the oracle (best by ARI), so the gap is visible."""
    ok = table[table["status"] == "OK"]
    if ok.empty:
        return "No trial finished."
    winner = ok.iloc[0]
    lines = [f"Selected by {metric}: trial {winner['trial']} ({winner['model']}, {winner['clusterer']})"]
    if "ari" in ok and ok["ari"].notna().any():
        oracle = ok.loc[ok["ari"].idxmax()]
        lines[0] += f": ARI {winner['ari']:.4f}, NMI {winner['nmi']:.4f}"
        lines.append(f"Oracle (best ARI, uses labels): trial {oracle['trial']} ({oracle['model']}, {oracle['clusterer']}): ARI {oracle['ari']:.4f}, NMI {oracle['nmi']:.4f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------- run it


def trial_name(trial: Any) -> str:
    """Readable trial (and MLflow run) names: vae-kmeans-1a2b3c4d."""
    config = trial.config
    return f"{config.get('model', 'vae')}-{config.get('clusterer', 'kmeans')}-{trial.trial_id}"


@dataclass(frozen=True)
class SweepOutcome:
    leaderboard: pd.DataFrame
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
    if "n_clusters" in cfg.space:
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
    cpus = cfg.resources.cpus_per_trial
    trainable = tune.with_resources(
        tune.with_parameters(tune_trainable, data=data, cpus=cpus),  # the data goes to the object store once
        {"cpu": cpus, "gpu": cfg.resources.gpus_per_trial},
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=optuna_search(cfg.space, cfg.search),
            num_samples=cfg.search.num_samples,
            max_concurrent_trials=cfg.search.max_concurrent_trials,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(expand_path(cfg.storage_path).resolve()),
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=0),  # a failed trial is recorded, not retried
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
        "num_samples": cfg.search.num_samples,
        "max_concurrent_trials": cfg.search.max_concurrent_trials,
    }


def _summary_metrics(table: pd.DataFrame) -> dict[str, float]:
    ok = table[table["status"] == "OK"]
    metrics = {"n_trials_ok": float(len(ok)), "n_trials_failed": float(len(table) - len(ok))}
    if len(ok):
        metrics.update({f"best_{m}": float(ok.iloc[0][m]) for m in LEADERBOARD_METRICS if pd.notna(ok.iloc[0][m])})
    return metrics


def run_sweep(cfg: SweepConfig, sweep_yaml: str = "") -> SweepOutcome:
    """Run the whole sweep; the MLflow parent run ends FINISHED, or FAILED if the sweep itself fails."""
    import ray

    from musicvae import tracking

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
            table = leaderboard(results, cfg.search.metric, cfg.search.resolved_mode)
            summary = selection_summary(table, cfg.search.metric)
            report = format_leaderboard(table) + "\n\n" + summary
            tracking.log_summary(client, parent, _summary_metrics(table), {"leaderboard.csv": table.to_csv(index=False), "leaderboard.txt": report})
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
    return SweepOutcome(table, parent, uri, experiment_id, seconds)
