"""The sweep's MLflow parent run: opened (or, on resume, reopened) before the trials, its summary after.

The trials are its children (:mod:`musicvae.tracking.trial_tracking`); the tags and the
MLflow calls themselves live in :mod:`musicvae.tracking.runs`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musicvae.config.sweep_file import SweepConfig
from musicvae.data import locations
from musicvae.data.dataset import FeatureSet
from musicvae.evaluation.leaderboard import METRICS, TrialStatus
from musicvae.evaluation.selection import Selection
from musicvae.tracking import runs as tracking


def selection_metrics(selection: Selection) -> dict[str, float]:
    """The parent run's selection metrics: the winner's stability and scores, and (with labels) its ARI, NMI and regret."""
    if selection.winner is None:
        return {}
    win = selection.row(selection.winner)
    metrics = {
        "selection_seconds": selection.seconds,
        "selection_spaces": float(selection.n_spaces),
        "selection_rows": float(selection.n_rows),
        "selection_stable": float(selection.stable),
        "selected_stability": float(win["stability"]),
    }
    if selection.oracle is not None:
        metrics.update(selected_ari=float(win["ari"]), selected_nmi=float(win["nmi"]), selection_regret=selection.regret(selection.winner))
    return metrics


def sweep_params(cfg: SweepConfig, data: FeatureSet) -> dict[str, Any]:
    return {
        "sweep": cfg.name,
        "source": cfg.data.source.kind,
        "n_tracks": len(data.track_ids),
        "n_features": data.features.shape[1],
        "input_columns": ",".join(f"{name}:{values.shape[1]}" for name, values in data.inputs.items()),  # every input a model can read
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


def summary_metrics(table: pd.DataFrame, methods: pd.DataFrame) -> dict[str, float]:
    metrics = {f"n_trials_{status.lower()}": float((table["status"] == status).sum()) for status in TrialStatus}
    if len(methods):
        best = methods.iloc[0]
        metrics.update({f"best_{m}": float(best[f"{m}_mean"]) for m in METRICS if f"{m}_mean" in best and pd.notna(best[f"{m}_mean"])})
    return metrics


@dataclass(frozen=True)
class ParentRun:
    client: Any
    experiment_id: str
    run_id: str
    uri: str


def open_parent_run(cfg: SweepConfig, data: FeatureSet, sweep_yaml: str, run_path: str | None, run_name: str) -> ParentRun:
    """The sweep's MLflow parent run: a new one, or (resuming) the one the run was started with, set running again."""
    if run_path is not None:
        saved = json.loads(locations.read_text(f"{run_path}/{locations.RUN_FILE}"))
        client, experiment_id = tracking.connect(saved["tracking_uri"], cfg.tracking.experiment)
        client.update_run(saved["parent_run_id"], status="RUNNING")
        return ParentRun(client, experiment_id, saved["parent_run_id"], saved["tracking_uri"])
    uri = cfg.tracking.resolved_uri()
    client, experiment_id = tracking.connect(uri, cfg.tracking.experiment)
    run_id = tracking.start_parent_run(client, experiment_id, cfg.name, sweep_params(cfg, data), sweep_yaml, run_name)
    client.log_text(run_id, data.summary, "extraction.txt")
    with tempfile.TemporaryDirectory() as folder:  # for the report's explorer: titles, artists, audio files; musicnn's tags, to name clusters
        data.track_table().to_parquet(Path(folder) / "tracks.parquet", index=False)
        client.log_artifact(run_id, str(Path(folder) / "tracks.parquet"))
        tags = data.tag_table()
        if tags is not None:
            tags.to_parquet(Path(folder) / "tags.parquet", index=False)
            client.log_artifact(run_id, str(Path(folder) / "tags.parquet"))
    return ParentRun(client, experiment_id, run_id, uri)
