"""The report of a sweep over several inputs, read back from a real MLflow store: ranked as the selection ranks, the rows
it scored, every input's columns, and the Representations table (report.md, report.html, the console).

The trials are test_input_choice's (three inputs of 300 tracks, each clustered by K-Means and Ward), logged as a sweep
logs them, with the parent run's selection.csv and selection metrics written by the sweep's own functions.
"""

from __future__ import annotations

import time

import pytest
from mlflow.entities import Param
from mlflow.tracking import MlflowClient
from test_input_choice import collection, trials
from test_report import add_trial, markdown_rows

from musicvae.config.sections import SelectionConfig
from musicvae.evaluation.leaderboard import method_table
from musicvae.evaluation.selection import select_methods
from musicvae.reporting.report import write_report
from musicvae.reporting.summary import best_methods
from musicvae.reporting.tables import format_representations
from musicvae.tracking.parent_run import selection_metrics
from musicvae.tracking.sweep_runs import build_tables, read_sweep_runs

EXPERIMENT = "inputs-exp"
OBJECTIVE, MODE = "input_silhouette", "min"  # an order the selection does not follow (the worst first), so the report must say which it shows


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    inputs, genre = collection()
    table, clusters, embeddings = trials(inputs, genre)
    selection = select_methods(table, clusters, embeddings, inputs, SelectionConfig(sample=SelectionConfig().sample))
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=str(root / "artifacts"))
    parent = client.create_run(
        experiment_id, start_time=int(time.time() * 1000), run_name="inputs", tags={"musicvae.sweep": "inputs", "musicvae.role": "sweep"}
    )
    run_id = parent.info.run_id
    params = {
        "objective": OBJECTIVE, "mode": MODE, "n_tracks": len(genre), "n_features": 16, "n_labels": 4, "selection_rule": "per_input",
        "input_columns": ",".join(f"{name}:{x.shape[1]}" for name, x in inputs.items()),
    }  # fmt: skip
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    for name, value in selection_metrics(selection).items():
        client.log_metric(run_id, name, value)
    client.log_text(run_id, selection.scores.to_csv(index=False), "selection.csv")
    client.log_text(run_id, "name: inputs\n", "sweep.yaml")
    for _, row in table.iterrows():
        config = {k: row[k] for k in ("input", "model", "clusterer", "n_clusters", "seed")}
        metrics = {m: float(row[m]) for m in (OBJECTIVE, "ari", "nmi", "largest_cluster") if m in row}
        add_trial(client, experiment_id, run_id, "inputs", config, {**metrics, "trial_seconds": 1.0}, "FINISHED")
    client.set_terminated(run_id, status="FINISHED")
    out = root / "report"
    write_report(uri, EXPERIMENT, ["inputs"], out)
    return {"uri": uri, "client": client, "selection": selection, "table": table, "folder": out / "inputs", "run_id": run_id}


def test_the_method_table_and_the_best_methods_chart_follow_the_selection(sweep: dict) -> None:
    selection = sweep["selection"]
    by_objective = method_table(sweep["table"], OBJECTIVE, MODE)
    assert by_objective["method"].iloc[0] != selection.winner  # the objective's order is not the selection's
    markdown = (sweep["folder"] / "methods.md").read_text()
    assert "methods ranked by the 'per_input' selection rule (label-free)" in markdown
    rows = list(markdown_rows(markdown.split("## Methods", 1)[1].split("## Selection", 1)[0]))
    ranked = selection.ranked(by_objective)["method"].tolist()
    assert rows == ranked and rows[0] == selection.winner
    tables = build_tables(read_sweep_runs(sweep["client"], EXPERIMENT, "inputs"))
    assert best_methods(tables.table, tables.methods)["method"].iloc[0] == selection.winner  # the chart's first bar


def test_the_selection_line_counts_the_rows_it_scored_and_the_data_line_every_input(sweep: dict) -> None:
    markdown = (sweep["folder"] / "methods.md").read_text()
    assert f"{sweep['selection'].n_rows} rows" in markdown and sweep["selection"].n_rows == 300  # every track, not the sample's 1500
    assert "Data: 300 tracks; inputs mfcc (16 columns), musicnn_mtt (16), musicnn_msd (16); 4 labels." in markdown
    page = (sweep["folder"] / "report.html").read_text()
    assert "300 tracks; inputs mfcc (16 columns)" in page


def test_the_representations_table_has_a_row_per_input_and_says_which_led(sweep: dict) -> None:
    selection = sweep["selection"]
    chosen = selection.row(selection.winner)["input"]
    markdown = (sweep["folder"] / "methods.md").read_text()
    section = markdown.split("## Representations", 1)[1].split("\n## ", 1)[0]
    rows = markdown_rows(section)
    assert set(rows) == {f"**{chosen}** ★", *({"mfcc", "musicnn_mtt", "musicnn_msd"} - {chosen})}
    assert rows[f"**{chosen}** ★"]["method"] == selection.winner
    assert f"{chosen} chosen: its best method leads" in section
    page = (sweep["folder"] / "report.html").read_text()
    assert "id='representations'" in page and f"{chosen} chosen" in page
    console = format_representations(selection)
    assert console.count("\n") == 5 and "★" in console  # a title, a header, three inputs, the sentence
