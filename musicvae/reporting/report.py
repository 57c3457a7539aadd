"""``musicvae report``: a finished sweep's study tables and figures, read back from MLflow.

A sweep prints its leaderboard when it ends, but a study is written up later,
often from several sweeps (the easy, medium and hard tasks) and on another
machine. Everything needed is already in MLflow; :mod:`musicvae.tracking.sweep_runs`
reads it back into the same trial and method tables as the sweep's, so the
report's numbers are the leaderboard's numbers. The tables' Markdown comes
from :mod:`musicvae.evaluation.leaderboard` and the figures from :mod:`musicvae.reporting.summary`.

For each sweep it writes ``methods.md`` (mean ± std over seeds, best per column
in bold, label-free selection against the oracle), ``methods.csv``,
``trials.csv`` and three figures, then logs them on the sweep's parent run
under ``report/``. With several sweeps, ``report.md`` puts them side by side.
``--figures RUN`` first draws the projection figure (UMAP and t-SNE,
:mod:`musicvae.reporting.trial_projection`) of any finished trial into its own run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from musicvae.config.sections import TrialsConfig
from musicvae.config.sweep_file import SweepFileError, parse_sweep
from musicvae.evaluation.leaderboard import (
    TrialStatus,
    pareto_front,
    status_counts,
)
from musicvae.reporting import figures as fig
from musicvae.reporting.summary import best_methods_figure, beta_curves, save_heatmap
from musicvae.reporting.tables import (
    data_facts,
    k_markdown_table,
    methods_markdown_table,
    ranking,
    representations_markdown,
    selection_markdown_table,
    selection_summary,
    table_legend,
)
from musicvae.reporting.trial_projection import project_logged_run
from musicvae.tracking.sweep_runs import SweepTables, build_tables, read_sweep_runs

FIGURES = ("metrics_heatmap.png", "beta_curves.png", "best_methods.png")  # what write_figures draws, where it can


# ----------------------------------------------------------------------------------------------------- figures


def write_figures(tables: SweepTables, folder: Path) -> tuple[list[Path], list[str]]:
    """The three PNGs (those that can be drawn) and a note for each that could not."""
    name = tables.sweep.name
    if tables.methods.empty:
        return [], ["No figures: no trial finished."]
    written = [save_heatmap(tables.methods, name, folder)]
    curves, note = beta_curves(tables.table, name)
    if curves is not None:
        written.append(fig.save_figure(curves, folder / "beta_curves.png"))
    chart = best_methods_figure(tables.table, tables.methods, name, ranking(tables.sweep.selection, tables.sweep.metric))
    written.append(fig.save_figure(chart, folder / "best_methods.png"))
    return written, [note] if note else []


# -------------------------------------------------------------------------------------------------- markdown


def _started(run: Run) -> str:
    return datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _problems(table: pd.DataFrame, limit: int = 20) -> list[str]:
    """A line per failed or stopped trial (the first ``limit``), so failures are read, not just counted."""
    bad = table[table["status"] != TrialStatus.OK]
    lines = [f"- `{row['trial']}` {row['status']}: {row['error'] or 'no reason recorded'}" for _, row in bad.head(limit).iterrows()]
    if len(bad) > limit:
        lines.append(f"- … and {len(bad) - limit} more (see trials.csv)")
    return lines


def task_markdown(tables: SweepTables, figures: list[Path], notes: list[str], level: int = 1, prefix: str = "", clusters: Sequence[str] = ()) -> str:
    """The sweep's report in Markdown; ``level`` and ``prefix`` (a folder for figure links) let report.md nest it;
    ``clusters``, lines naming the explored methods' clusters by musicnn's tags."""
    sweep, table, methods = tables.sweep, tables.table, tables.methods
    h = "#" * level
    params = sweep.parent.data.params
    counts = status_counts(table)
    objectives = ", ".join(f"{m} ({mode})" for m, mode in zip(sweep.objectives, sweep.modes))
    lines = [
        f"{h} {sweep.name}",
        "",
        f"MLflow parent run `{sweep.run_id}` (experiment `{sweep.experiment}`), started {_started(sweep.parent)}, status {sweep.parent.info.status}.",
    ]
    if facts := data_facts(params):
        lines.append(f"Data: {facts}.")
    if params.get("group_by", "none") != "none":
        lines.append(f"Metadata used: each track's embedding was pooled with its {params['group_by']} group before clustering (data.group_by; not labels).")
    lines += [
        f"Objective: {objectives}; methods ranked by {ranking(sweep.selection, sweep.metric)}.",
        f"Trials: {len(table)} ({counts[TrialStatus.OK]} OK, {counts[TrialStatus.FAILED]} failed, {counts[TrialStatus.STOPPED]} stopped).",
        "",
        f"{h}# Methods",
    ]
    if methods.empty:
        lines += ["", "No trial finished: there is nothing to compare."]
    else:
        lines += ["", methods_markdown_table(methods), "", table_legend(methods)]
    lines += ["", f"{h}# Selection", ""]
    if sweep.selection is not None:
        lines += [f"- {line.strip()}" for line in sweep.selection.summary().splitlines() if "other rules' picks" not in line]
        lines += ["", selection_markdown_table(sweep.selection)]
        if representations := representations_markdown(sweep.selection):
            lines += ["", f"{h}# Representations", "", representations]
        k_table = k_markdown_table(sweep.selection)
        if k_table:
            winner = sweep.selection.winner
            lines += ["", f"{h}# Choosing k", "", f"The chosen method's representation and clusterer ({winner}) at each k the sweep tried: every rule's "
                      "score (higher is better), the stability and ARI/NMI (labels: evaluation only); ★ the k chosen.", "", k_table]  # fmt: skip
    else:
        lines += [f"- {line}" for line in selection_summary(table, sweep.metric, sweep.mode).splitlines()]
        lines.append("- (this sweep predates shared-space selection: the pick above is by its own objective)")
    if clusters:
        lines += ["", f"{h}# Clusters, named by musicnn's tags", "", *clusters]
    if len(sweep.objectives) > 1 and not methods.empty:
        front = pareto_front(methods, sweep.objectives, sweep.modes)
        lines += ["", f"Pareto front over {', '.join(sweep.objectives)} (method means): " + ("; ".join(front["method"]) or "empty")]
    if counts[TrialStatus.FAILED] or counts[TrialStatus.STOPPED]:
        lines += ["", f"{h}# Failed and stopped trials", "", *_problems(table)]
    lines += ["", f"{h}# Figures", ""]
    lines += [f"![{path.stem.replace('_', ' ')}]({prefix}{path.name})" for path in figures]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------- write


def write_task(tables: SweepTables, folder: Path, client: MlflowClient) -> tuple[list[Path], str]:
    """methods.md, methods.csv, trials.csv, report.html and the figures in ``folder``; returns them and the Markdown for report.md."""
    from musicvae.reporting.report_html import tag_note, track_tags, write_html  # it draws on this module's tables

    folder.mkdir(parents=True, exist_ok=True)
    for stale in FIGURES:  # a figure not drawn this time must not linger
        (folder / stale).unlink(missing_ok=True)
    figures, notes = write_figures(tables, folder)
    tables.methods.to_csv(folder / "methods.csv", index=False)
    tables.table.to_csv(folder / "trials.csv", index=False)
    tags = track_tags(client, tables.sweep.run_id)
    page, explored = write_html(tables, client, folder, tags)
    written = [folder / "methods.md", folder / "methods.csv", folder / "trials.csv", page]
    named = [item for item in explored if item.cluster_tags]
    clusters = [f"{tag_note(tags)} Each cluster's tags most above their mean over the collection."] if named else []
    for item in named:
        clusters += ["", f"{item.method} ({item.role}, trial `{item.trial}`):", ""]
        clusters += [f"- cluster {c} ({(item.tracks['cluster'] == c).sum()} tracks): {text}" for c, text in item.cluster_tags.items()]
    if tables.sweep.selection is not None:
        tables.sweep.selection.scores.to_csv(folder / "selection.csv", index=False)
        written.append(folder / "selection.csv")
    (folder / "methods.md").write_text(task_markdown(tables, figures, notes, clusters=clusters))
    combined = task_markdown(tables, figures, notes, level=2, prefix=f"{folder.name}/", clusters=clusters)
    return [*written, *figures], combined


def _check_store(tracking_uri: str) -> None:
    """A SQLite store that does not exist is a typo, not an empty store: MLflow would quietly create it."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.exists():
            raise ValueError(f"no MLflow database at {path} (set --tracking-uri or MLFLOW_TRACKING_URI)")


def figure_points(client: MlflowClient, parent: Run) -> int:
    """``trials.figure_points`` of the sweep file the parent run logged (``sweep.yaml``), else the default.

    Read through the one validated loader; a file today's schema refuses (a sweep of an older musicvae) gives the default.
    """
    default = TrialsConfig.model_fields["figure_points"].default
    if "sweep.yaml" not in {item.path for item in client.list_artifacts(parent.info.run_id)}:
        return default
    with tempfile.TemporaryDirectory() as folder:
        text = Path(client.download_artifacts(parent.info.run_id, "sweep.yaml", folder)).read_text()
    try:
        return parse_sweep(yaml.safe_load(text), origin=f"the sweep.yaml of run {parent.info.run_id}").trials.figure_points
    except (SweepFileError, yaml.YAMLError):
        return default


def trials_to_project(client: MlflowClient, all_tables: list[SweepTables], wanted: list[str]) -> list[tuple[SweepTables, pd.Series]]:
    """The trials ``--figures`` names (MLflow run ids or trial names), each a finished trial of one of the sweeps with an embedding.

    All are checked before anything is drawn; a ValueError names the first that is not.
    """
    found = []
    for want in dict.fromkeys(wanted):
        match = next(((t, row) for t in all_tables for _, row in t.table.iterrows() if want in (row["run_id"], row["trial"])), None)
        if match is None:
            sweeps = " or ".join(f"'{t.sweep.name}' (parent run {t.sweep.run_id})" for t in all_tables)
            raise ValueError(f"--figures {want}: not a trial of sweep {sweeps}; give a run id or trial name from its trials.csv")
        tables, row = match
        if "embedding.parquet" not in {item.path for item in client.list_artifacts(row["run_id"])}:
            raise ValueError(f"--figures {want}: trial {row['trial']} (run {row['run_id']}, {row['status']}) logged no embedding.parquet to project")
        found.append(match)
    return found


def write_report(tracking_uri: str, experiment: str, names: list[str], out: Path, run_id: str | None = None, figures: list[str] | None = None) -> list[Path]:
    """Write each sweep's report into ``out/<name>/``, log it on the sweep's parent run under ``report/``; returns the files.

    Every sweep is read before anything is written, so a misspelt name fails
    without leaving half a report. With several names, ``out/report.md`` has a
    section per sweep. ``run_id`` picks a parent run other than the latest
    (one name only). ``figures`` (run ids or trial names) first draws each
    such trial's projection figure into its own run
    (:func:`musicvae.reporting.trial_projection.project_logged_run`), so the report and
    the MLflow UI find it where a trial's own would be.
    """
    names = list(dict.fromkeys(names))
    if run_id is not None and len(names) != 1:
        raise ValueError("--run-id picks one sweep's parent run: give exactly one sweep name with it")
    _check_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    all_tables = [build_tables(read_sweep_runs(client, experiment, name, run_id)) for name in names]
    for tables, row in trials_to_project(client, all_tables, figures or []):
        project_logged_run(client, row, figure_points(client, tables.sweep.parent))
    written, sections = [], []
    for tables in all_tables:
        sweep = tables.sweep
        files, section = write_task(tables, Path(out) / sweep.name, client)
        for path in files:  # file by file: only the report's own files, never whatever else the folder holds
            client.log_artifact(sweep.run_id, str(path), "report")
        written += files
        sections.append(section)
    if len(all_tables) > 1:
        combined = Path(out) / "report.md"
        combined.write_text(f"# Report: {', '.join(names)}\n\n" + "\n".join(sections))
        written.append(combined)
    return written
