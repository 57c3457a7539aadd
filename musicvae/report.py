"""``musicvae report``: a finished sweep's study tables and figures, read back from MLflow.

A sweep prints its leaderboard when it ends, but a study is written up later,
often from several sweeps (the easy, medium and hard tasks) and on another
machine. Everything needed is already in MLflow: the sweep's parent run holds
the objective, each child run a trial's config (params), final metrics and
status. This module reads them back into :class:`~musicvae.leaderboard.TrialRecord`
objects and goes through the same ``trial_table``/``method_table`` as the sweep,
so the report's numbers are the leaderboard's numbers.

For each sweep it writes ``methods.md`` (mean ± std over seeds, best per column
in bold, label-free selection against the oracle), ``methods.csv``,
``trials.csv`` and three figures, then logs them on the sweep's parent run
under ``report/``. With several sweeps, ``report.md`` puts them side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from musicvae import figures as fig
from musicvae import metric_registry as registry
from musicvae import study_figures
from musicvae.config import SelectionConfig
from musicvae.leaderboard import TrialRecord, method_table, pareto_front, selection_summary, setting, trial_table
from musicvae.metric_registry import QUALITY
from musicvae.metrics import DEGENERATE_SHARE
from musicvae.params import VARIATIONAL_MODELS, TrialParams, param_kind
from musicvae.selection import Selection, choose
from musicvae.summary import metrics_heatmap
from musicvae.tracking import ERROR_TAG, ROLE_TAG, SWEEP_TAG, search_all_runs

STOPPED_TAG = "musicvae.stopped"  # why the scheduler stopped a trial

# Columns of methods.md. Quality metrics get a bold best; the diagnostics are context, not a ranking.
DIAGNOSTICS = ("noise_fraction", "largest_cluster", "seconds")

CURVE_METRICS = ("silhouette", "ari", "nmi")  # beta_curves.png panels
BAR_METRICS = ("silhouette", "ari", "nmi", "purity")  # best_methods.png groups: all on one [-1, 1] scale
TOP_METHODS = 5  # best_methods.png: this many by the primary objective, plus the best of each baseline
BASELINES = ("raw", "pca")


# ------------------------------------------------------------------------------------------------ reading MLflow


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
        return TrialRecord(name, "FAILED", config, metrics, run.data.tags.get(ERROR_TAG, "unknown error")[:300])
    if status not in ("FINISHED", "KILLED"):
        return TrialRecord(name, "FAILED", config, metrics, f"unfinished (MLflow status {status}): the sweep was still running or was interrupted")
    if status == "KILLED" or "trial_seconds" not in metrics:
        epoch = metrics.get("epoch")
        reason = run.data.tags.get(STOPPED_TAG) or "stopped early" + (f" after epoch {int(epoch)}" if epoch is not None else "")
        return TrialRecord(name, "STOPPED", config, metrics, reason)
    return TrialRecord(name, "OK", config, metrics)


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
    import tempfile

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
    return choose(scores, cfg, int(metrics.get("selection_spaces", 0)), cfg.sample)


# ---------------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class SweepTables:
    """The sweep's trial table and method table, as the sweep's own leaderboard builds them."""

    sweep: SweepRuns
    table: pd.DataFrame
    methods: pd.DataFrame


def build_tables(sweep: SweepRuns) -> SweepTables:
    table = trial_table(sweep.records, sweep.metric, sweep.mode)
    table.insert(1, "run_id", table["trial"].map(sweep.run_ids))
    return SweepTables(sweep, table, method_table(table, sweep.metric, sweep.mode))


def degenerate_rows(methods: pd.DataFrame) -> set[int]:
    """Methods that put DEGENERATE_SHARE of the tracks in one cluster: internal metrics reward them, selection skips them."""
    if "largest_cluster_mean" not in methods:
        return set()
    return set(methods.index[methods["largest_cluster_mean"] >= DEGENERATE_SHARE])


def best_rows(methods: pd.DataFrame, column: str) -> set[int]:
    """Rows holding the best mean of a quality column, degenerate methods aside, as in selection.

    Means are compared as printed, so two cells that read the same are both
    bold. None when fewer than two methods have a value: a lone value is not "best".
    """
    values = methods[f"{column}_mean"].drop(index=list(degenerate_rows(methods))).dropna()
    if len(values) < 2:
        return set()
    best = values.min() if registry.lower_is_better(column) else values.max()
    places = registry.digits(best, column)
    return set(values.index[values.round(places) == round(best, places)])


def report_columns(methods: pd.DataFrame) -> list[str]:
    """The quality metrics and diagnostics the sweep has; noise only where a density clusterer made some."""
    columns = [c for c in (*QUALITY, *DIAGNOSTICS) if f"{c}_mean" in methods and methods[f"{c}_mean"].notna().any()]
    if "noise_fraction" in columns and not methods["noise_fraction_mean"].fillna(0).any():
        columns.remove("noise_fraction")
    return columns


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def methods_markdown_table(methods: pd.DataFrame) -> str:
    """Method × metric, 'mean ± std' over seeds, the best mean of each quality metric in bold."""
    columns = report_columns(methods)
    headers = ["method", "n"] + [registry.label(c) + (" (lower is better)" if c in QUALITY and registry.lower_is_better(c) else "") for c in columns]
    bold = {c: best_rows(methods, c) for c in columns if c in QUALITY}
    degenerate = degenerate_rows(methods)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---", "---:"] + ["---:"] * len(columns)) + "|"]
    for index, row in methods.iterrows():
        cells = [_escape(row["method"]) + (" †" if index in degenerate else ""), str(int(row["n"]))]
        for c in columns:
            text = registry.format_value(row[f"{c}_mean"], row[f"{c}_std"], c)
            cells.append(f"**{text}**" if index in bold.get(c, ()) else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def selection_markdown_table(selection: Selection) -> str:
    """Every rule's pick with its stability and, where the sweep has labels, its mean ARI and regret; the chosen rule in bold."""
    labelled = selection.oracle is not None
    headers = ["rule", "pick", "stability"] + (["ARI", "regret"] if labelled else [])
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(headers) - 2)) + "|"]
    for rule, pick in selection.picks.items():
        row = selection.row(pick)
        cells = [f"**{rule}**" if rule == selection.rule else rule, _escape(pick), f"{row['stability']:.3f}"]
        if labelled:
            cells += [f"{row['ari']:.4f}", f"{selection.regret(pick):.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_legend(methods: pd.DataFrame) -> str:
    """What the marks in the table mean; a mark the table does not use is not explained."""
    notes = ["Mean ± std over seeds (n: finished seeds).", "**Bold**: the best mean of each clustering metric."]
    if degenerate_rows(methods):
        notes.append(f"†: degenerate, {DEGENERATE_SHARE:.0%}+ of the tracks in one cluster on average (never bold, never selected).")
    if methods.filter(like="_mean").isna().any().any():
        notes.append("–: undefined for at least one seed (e.g. a single cluster).")
    if "ari_mean" in methods and methods["ari_mean"].notna().any():
        notes.append("ARI, NMI and purity use the labels: evaluation only.")
    return " ".join(notes)


def status_counts(table: pd.DataFrame) -> dict[str, int]:
    return {status: int((table["status"] == status).sum()) for status in ("OK", "FAILED", "STOPPED")}


# --------------------------------------------------------------------------------------------------- figures


def _param_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c in TrialParams.model_fields]


def beta_points(table: pd.DataFrame) -> pd.DataFrame:
    """Per (variational model × clusterer × other varying settings, β): mean and std over seeds of the curve metrics.

    Settings other than β and the seed that vary (a latent size, say) stay in
    the series, so each error bar is a spread over seeds only. A seed with an
    undefined metric makes the point undefined, as in the method table.
    """
    ok = table[(table["status"] == "OK") & table["model"].isin(VARIATIONAL_MODELS)]
    if ok.empty:
        return pd.DataFrame(columns=["series", "beta"])
    ok = ok.assign(beta=ok["beta"].astype(float))
    varying = [p for p in _param_columns(ok) if p not in ("model", "clusterer", "beta", "seed") and ok[p].astype(str).nunique() > 1]
    labels = []
    for _, row in ok.iterrows():
        settings = ", ".join(setting(p, row[p]) for p in varying if row[p] != "")
        labels.append(f"{row['model']}{f' ({settings})' if settings else ''} + {row['clusterer']}")
    metrics = [m for m in CURVE_METRICS if ok[m].notna().any()]
    grouped = ok.assign(series=labels).groupby(["series", "beta"], sort=True)[metrics]
    means = grouped.agg(lambda values: values.mean(skipna=False)).add_suffix("_mean")
    stds = grouped.agg(lambda values: values.std(ddof=1, skipna=False)).add_suffix("_std")
    return pd.concat([grouped.size().rename("n"), means, stds], axis=1).reset_index()


def beta_curves(table: pd.DataFrame, name: str) -> tuple[Any | None, str]:
    """The metric-vs-β figure, or None and the reason it was not drawn."""
    points = beta_points(table)
    if points["beta"].nunique() < 2:
        why = "no variational model finished" if points.empty else f"a single β value ({points['beta'].iloc[0]:g})"
        return None, f"β curves not drawn: {why}; they need at least two β values."
    metrics = [m for m in CURVE_METRICS if f"{m}_mean" in points]
    title = f"{name}: clustering quality against β (mean ± std over seeds)"
    return study_figures.metric_curves_figure(points, "beta", "series", metrics, title=title, x_label="β (log scale)", log_x=True), ""


def best_methods(tables: SweepTables, top: int = TOP_METHODS) -> pd.DataFrame:
    """The top methods by the primary objective, then the best raw and PCA baselines not already among them.

    Adds a ``label`` column for the legend: the rank and method, then which
    baseline it is, whether it is degenerate (as selection sees it) and its seeds.
    """
    methods = tables.methods.reset_index(drop=True)
    model_of = methods["method"].map(dict(zip(tables.table["method"], tables.table["model"])))
    best_baselines = {methods.index[model_of == b][0]: b for b in BASELINES if (model_of == b).any()}
    rows = sorted(set(range(min(top, len(methods)))) | set(best_baselines))  # rank order
    degenerate = degenerate_rows(methods)
    labels = []
    for i in rows:
        notes = [f"best {best_baselines[i]} baseline"] if i in best_baselines and i >= top else []
        notes += [f"{methods.at[i, 'largest_cluster_mean']:.0%} in one cluster"] if i in degenerate else []
        notes.append(f"n={int(methods.at[i, 'n'])}")
        labels.append(f"{i + 1}. {methods.at[i, 'method']} ({'; '.join(notes)})")
    return methods.loc[rows].assign(label=labels).reset_index(drop=True)


def best_methods_figure(tables: SweepTables, name: str) -> Any:
    """Grouped bars, a group per metric, for :func:`best_methods`; baselines hatched."""
    chosen = best_methods(tables)
    model_of = dict(zip(tables.table["method"], tables.table["model"]))
    metrics = [m for m in BAR_METRICS if f"{m}_mean" in chosen and chosen[f"{m}_mean"].notna().any()]
    means = chosen.set_index("label")[[f"{m}_mean" for m in metrics]].set_axis(metrics, axis=1)
    stds = chosen.set_index("label")[[f"{m}_std" for m in metrics]].set_axis(metrics, axis=1)
    hatched = tuple(label for label, method in zip(chosen["label"], chosen["method"]) if model_of.get(method) in BASELINES)
    metric = tables.sweep.metric
    title = f"{name}: the best methods by {metric}, and the best baselines (mean ± std over n seeds)"
    return study_figures.grouped_bars_figure(means, stds, title=title, y_label="score (higher is better)", hatched=hatched)


def write_figures(tables: SweepTables, folder: Path) -> tuple[list[Path], list[str]]:
    """The three PNGs (those that can be drawn) and a note for each that could not."""
    name = tables.sweep.name
    if tables.methods.empty:
        return [], ["No figures: no trial finished."]
    heatmap = metrics_heatmap(tables.methods, f"{name}: metrics per method (mean ± std over seeds)")
    written = [fig.save_figure(heatmap, folder / "metrics_heatmap.png")]
    curves, note = beta_curves(tables.table, name)
    if curves is not None:
        written.append(fig.save_figure(curves, folder / "beta_curves.png"))
    written.append(fig.save_figure(best_methods_figure(tables, name), folder / "best_methods.png"))
    return written, [note] if note else []


# -------------------------------------------------------------------------------------------------- markdown


def _started(run: Run) -> str:
    return datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _problems(table: pd.DataFrame, limit: int = 20) -> list[str]:
    """A line per failed or stopped trial (the first ``limit``), so failures are read, not just counted."""
    bad = table[table["status"] != "OK"]
    lines = [f"- `{row['trial']}` {row['status']}: {row['error'] or 'no reason recorded'}" for _, row in bad.head(limit).iterrows()]
    if len(bad) > limit:
        lines.append(f"- … and {len(bad) - limit} more (see trials.csv)")
    return lines


def task_markdown(tables: SweepTables, figures: list[Path], notes: list[str], level: int = 1, prefix: str = "") -> str:
    """The sweep's report in Markdown; ``level`` and ``prefix`` (a folder for figure links) let report.md nest it."""
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
    if "n_tracks" in params:
        lines.append(f"Data: {params['n_tracks']} tracks × {params.get('n_features', '?')} features, {params.get('n_labels', '?')} labels.")
    if params.get("group_by", "none") != "none":
        lines.append(f"Metadata used: each track's embedding was pooled with its {params['group_by']} group before clustering (data.group_by; not labels).")
    lines += [
        f"Objective: {objectives}; methods ranked by {sweep.metric}.",
        f"Trials: {len(table)} ({counts['OK']} OK, {counts['FAILED']} failed, {counts['STOPPED']} stopped).",
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
    else:
        lines += [f"- {line}" for line in selection_summary(table, sweep.metric, sweep.mode).splitlines()]
        lines.append("- (this sweep predates shared-space selection: the pick above is by its own objective)")
    if len(sweep.objectives) > 1 and not methods.empty:
        front = pareto_front(methods, sweep.objectives, sweep.modes)
        lines += ["", f"Pareto front over {', '.join(sweep.objectives)} (method means): " + ("; ".join(front["method"]) or "empty")]
    if counts["FAILED"] or counts["STOPPED"]:
        lines += ["", f"{h}# Failed and stopped trials", "", *_problems(table)]
    lines += ["", f"{h}# Figures", ""]
    lines += [f"![{path.stem.replace('_', ' ')}]({prefix}{path.name})" for path in figures]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------- write


def write_task(tables: SweepTables, folder: Path, client: MlflowClient) -> tuple[list[Path], str]:
    """methods.md, methods.csv, trials.csv, report.html and the figures in ``folder``; returns them and the Markdown for report.md."""
    from musicvae.report_html import write_html  # it draws on this module's tables

    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("beta_curves.png", "best_methods.png", "metrics_heatmap.png"):  # a figure not drawn this time must not linger
        (folder / stale).unlink(missing_ok=True)
    figures, notes = write_figures(tables, folder)
    tables.methods.to_csv(folder / "methods.csv", index=False)
    tables.table.to_csv(folder / "trials.csv", index=False)
    written = [folder / "methods.md", folder / "methods.csv", folder / "trials.csv", write_html(tables, client, folder)]
    if tables.sweep.selection is not None:
        tables.sweep.selection.scores.to_csv(folder / "selection.csv", index=False)
        written.append(folder / "selection.csv")
    (folder / "methods.md").write_text(task_markdown(tables, figures, notes))
    combined = task_markdown(tables, figures, notes, level=2, prefix=f"{folder.name}/")
    return [*written, *figures], combined


def _check_store(tracking_uri: str) -> None:
    """A SQLite store that does not exist is a typo, not an empty store: MLflow would quietly create it."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.exists():
            raise ValueError(f"no MLflow database at {path} (set --tracking-uri or MLFLOW_TRACKING_URI)")


def write_report(tracking_uri: str, experiment: str, names: list[str], out: Path, run_id: str | None = None) -> list[Path]:
    """Write each sweep's report into ``out/<name>/``, log it on the sweep's parent run under ``report/``; returns the files.

    Every sweep is read before anything is written, so a misspelt name fails
    without leaving half a report. With several names, ``out/report.md`` has a
    section per sweep. ``run_id`` picks a parent run other than the latest
    (one name only).
    """
    names = list(dict.fromkeys(names))
    if run_id is not None and len(names) != 1:
        raise ValueError("--run-id picks one sweep's parent run: give exactly one sweep name with it")
    _check_store(tracking_uri)
    client = MlflowClient(tracking_uri)
    sweeps = [read_sweep_runs(client, experiment, name, run_id) for name in names]
    written, sections = [], []
    for sweep in sweeps:
        files, section = write_task(build_tables(sweep), Path(out) / sweep.name, client)
        for path in files:  # file by file: only the report's own files, never whatever else the folder holds
            client.log_artifact(sweep.run_id, str(path), "report")
        written += files
        sections.append(section)
    if len(sweeps) > 1:
        combined = Path(out) / "report.md"
        combined.write_text(f"# Report: {', '.join(names)}\n\n" + "\n".join(sections))
        written.append(combined)
    return written
