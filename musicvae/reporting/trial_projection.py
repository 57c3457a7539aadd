"""A trial's projection figure: UMAP and t-SNE of its embedding, coloured by cluster and by genre.

It costs seconds a trial (a UMAP and a t-SNE of up to ``trials.figure_points``
tracks), more than training a small model, so it is drawn where it is read:

* in the trial itself only when the sweep file lists ``umap`` or ``tsne``
  under ``trials.figures`` (the default is the latent analysis alone);
* after the sweep (:func:`project_selected`), for the selected method's trial
  and the oracle's (where labels exist), unless ``trials.after_sweep_projections``
  is false; the β grid (:mod:`musicvae.reporting.summary`) draws from the same cache;
* on demand, for any finished trial: ``musicvae report NAME --figures RUN``
  (:func:`project_logged_run`).

Each writes the same two files from the trial's embedding table (its
``embedding.parquet``): ``figures/projection.png`` and ``projection.parquet``
(the coordinates the β grid and the report's explorer reuse). After the sweep
and on demand they go into the trial's own MLflow run, where a trial logs its
own. No Ray and no torch: ``musicvae report`` imports this.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from musicvae.clustering.manifold import cached_array
from musicvae.config.params import TrialParams, trial_title
from musicvae.config.sections import TrialsConfig
from musicvae.evaluation.leaderboard import method_trial
from musicvae.reporting import figures as fig
from musicvae.reporting.projection import PROJECTIONS
from musicvae.tracking import runs as tracking

if TYPE_CHECKING:
    from musicvae.evaluation.selection import Selection
    from musicvae.tracking.parent_run import ParentRun


Projection = tuple[np.ndarray, str, int]  # what to project: (the sampled latents, the method, the seed)


def projection_sample(embedding: pd.DataFrame, figure_points: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The seeded sample of a trial's embedding table that its projections are drawn on: its rows, and their latents."""
    sample = embedding.iloc[fig.sample_rows(len(embedding), figure_points, seed)]
    return sample, sample.filter(regex=r"^z\d+$").to_numpy(np.float32)


def store_projection(job: Projection, coords: np.ndarray, cache_dir: Path | None) -> None:
    """Put coordinates computed elsewhere (a Ray task, see musicvae.tune.sweep) into the cache, where :func:`cached_projection` finds them."""
    embedding, method, seed = job
    cached_projection(embedding, method, seed, cache_dir, computed=coords)


def cached_projection(embedding: np.ndarray, method: str, seed: int, cache_dir: Path | None, computed: np.ndarray | None = None) -> np.ndarray:
    """UMAP/t-SNE coordinates, computed once per distinct embedding.

    Trials that differ only in the clusterer train the same model with the
    same seed and get the very same embedding (training is deterministic), so
    a study's grid of models x clusterers would otherwise project each
    embedding once per clusterer. The key is the embedding's bytes: a
    different embedding can never be served a stale picture. ``computed``:
    the coordinates, projected elsewhere, to store under that key.
    """
    from musicvae.reporting.projection import project

    return cached_array(cache_dir, embedding, f"{method}{seed}", lambda: project(embedding, method, seed=seed) if computed is None else computed)


def save_projection(
    embedding: pd.DataFrame,
    directory: Path,
    *,
    figure_points: int,
    seed: int,
    title: str = "",
    methods: tuple[str, ...] = PROJECTIONS,
    label_names: list[str] | None = None,
    cache_dir: Path | None = None,
) -> None:
    """``directory/figures/projection.png`` and ``directory/projection.parquet`` from a trial's embedding table.

    ``embedding`` is what the trial's ``embedding.parquet`` holds (track_id,
    cluster, genre where labelled, z00...). Drawn on the seeded sample of
    ``figure_points`` tracks, projected with ``seed``, as the trial would.
    Genres are coded by ``label_names``, by default the sorted names (as the
    data's own labels are coded), so each genre keeps its colour.
    """
    sample, z = projection_sample(embedding, figure_points, seed)
    coords = {m: cached_projection(z, m, seed, cache_dir) for m in methods}
    labels, names = None, []
    if "genre" in sample:
        names = label_names if label_names is not None else sorted(embedding["genre"].astype(str).unique())
        labels = pd.Categorical(sample["genre"].astype(str), categories=names).codes.astype(np.int64)
    figure = fig.projection_figure(coords, sample["cluster"].to_numpy(), labels, names, title=title)
    fig.save_figure(figure, directory / "figures" / "projection.png")
    projection = pd.DataFrame({"track_id": sample["track_id"].to_numpy()})
    for m, xy in coords.items():
        projection[f"{m}_x"], projection[f"{m}_y"] = xy[:, 0], xy[:, 1]
    projection.to_parquet(directory / "projection.parquet", index=False)


def row_params(row: pd.Series) -> TrialParams:
    """A trial's parameters from its row of a trial table (:func:`musicvae.evaluation.leaderboard.trial_table`: blank where one does not apply)."""
    values = {k: row[k].item() if isinstance(row[k], np.generic) else row[k] for k in TrialParams.model_fields if k in row.index}
    return TrialParams.model_validate({k: v for k, v in values.items() if not pd.isna(v) and v != ""})


def _project_into_run(client: MlflowClient, run_id: str, embedding: pd.DataFrame, row: pd.Series, figure_points: int, cache_dir: Path | None) -> None:
    params = row_params(row)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        save_projection(embedding, out, figure_points=figure_points, seed=params.seed, title=trial_title(params), cache_dir=cache_dir)
        client.log_artifact(run_id, str(out / "projection.parquet"))
        client.log_artifact(run_id, str(out / "figures" / "projection.png"), "figures")


def selected_trials(table: pd.DataFrame, selection: Selection) -> list[pd.Series]:
    """The rows of the trials the report's explorer shows: the selected method's and the oracle's (with labels), each once."""
    rows = [method_trial(table, m) for m in (selection.winner, selection.oracle) if m is not None]
    return list({row["trial"]: row for row in rows}.values())


def unprojected(rows: list[pd.Series], checkpoints: dict[str, Any]) -> list[tuple[pd.Series, pd.DataFrame]]:
    """Of ``rows``, the trials with a checkpoint and no projection of their own, with their embedding tables."""
    found = []
    for row in rows:
        if (checkpoint := checkpoints.get(row["trial"])) is None:
            continue
        with checkpoint.as_directory() as directory:
            artifacts = Path(directory) / "artifacts"
            if not (artifacts / "projection.parquet").exists():
                found.append((row, pd.read_parquet(artifacts / "embedding.parquet")))
    return found


def selected_projections(table: pd.DataFrame, selection: Selection, checkpoints: dict[str, Any], trials: TrialsConfig) -> list[Projection]:
    """What :func:`project_selected` will project, so the sweep can compute it ahead, in parallel."""
    if not trials.after_sweep_projections:
        return []
    jobs = []
    for row, embedding in unprojected(selected_trials(table, selection), checkpoints):
        z = projection_sample(embedding, trials.figure_points, int(row["seed"]))[1]
        jobs += [(z, method, int(row["seed"])) for method in PROJECTIONS]
    return jobs


def project_selected(
    parent: ParentRun, table: pd.DataFrame, selection: Selection, checkpoints: dict[str, Any], trials: TrialsConfig, cache_dir: Path | None
) -> list[str]:
    """After selection: the projection figure of each of :func:`selected_trials`, logged into the trial's own run.

    The embedding comes from the trial's checkpoint, as selection read it;
    a trial that drew its own (``trials.figures``) is left as it is; nothing
    is drawn when ``trials.after_sweep_projections`` is false. ``cache_dir``:
    the sweep's projection cache. Returns the trials drawn.
    """
    if not trials.after_sweep_projections:
        return []
    run_ids = tracking.trial_run_ids(parent.client, parent.experiment_id, parent.run_id)
    drawn = []
    for row, embedding in unprojected(selected_trials(table, selection), checkpoints):
        if (run_id := run_ids.get(tracking.trial_id_of(row["trial"]))) is not None:
            _project_into_run(parent.client, run_id, embedding, row, trials.figure_points, cache_dir)
            drawn.append(row["trial"])
    return drawn


def project_logged_run(client: MlflowClient, row: pd.Series, figure_points: int, cache_dir: Path | None = None) -> None:
    """``musicvae report --figures``: the projection of a finished trial (its row, with ``run_id``) from the embedding in its run, into that run."""
    with tempfile.TemporaryDirectory() as folder:
        embedding = pd.read_parquet(client.download_artifacts(row["run_id"], "embedding.parquet", folder))
    _project_into_run(client, row["run_id"], embedding, row, figure_points, cache_dir)
