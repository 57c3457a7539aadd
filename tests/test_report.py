"""``musicvae report`` against a real MLflow store (SQLite in a temporary folder), written the way a sweep writes it.

The store holds the sweep ``study`` twice (an old run and the latest re-run)
and a second sweep ``baseline-only``. The latest ``study`` run has two VAE
methods over three seeds at two β values, a one-seed PCA baseline, a FAILED
trial and a trial the scheduler stopped (KILLED); the old run has a trial
stopped as older stores recorded it. Expected numbers are worked out by hand
from the values below.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from musicvae.cli import main
from musicvae.reporting import figures, study_figures
from musicvae.reporting.report import write_report
from musicvae.tracking import runs as tracking
from musicvae.tracking.sweep_runs import read_sweep_runs

EXPERIMENT = "study-exp"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRIAL_NUMBERS = itertools.count()
REPORT_FILES = {"methods.md", "methods.csv", "trials.csv", "report.html", "metrics_heatmap.png", "beta_curves.png", "best_methods.png"}

# (model, beta, seed) -> final metrics. vae β=0.5 wins on silhouette and CH, vae β=4 on ARI/NMI/purity,
# pca on Davies-Bouldin (lower is better): each column has its bold somewhere else.
TRIALS = {
    ("vae", 0.5, 0): dict(silhouette=0.30, calinski_harabasz=150.0, davies_bouldin=1.2, ari=0.2, nmi=0.25, purity=0.5),
    ("vae", 0.5, 1): dict(silhouette=0.40, calinski_harabasz=160.0, davies_bouldin=1.0, ari=0.3, nmi=0.25, purity=0.5),
    ("vae", 0.5, 2): dict(silhouette=0.50, calinski_harabasz=170.0, davies_bouldin=0.8, ari=0.4, nmi=0.25, purity=0.5),
    ("vae", 4.0, 0): dict(silhouette=0.20, calinski_harabasz=90.0, davies_bouldin=1.5, ari=0.5, nmi=0.4, purity=0.6),
    ("vae", 4.0, 1): dict(silhouette=0.25, calinski_harabasz=100.0, davies_bouldin=1.5, ari=0.6, nmi=0.5, purity=0.7),
    ("vae", 4.0, 2): dict(silhouette=0.30, calinski_harabasz=110.0, davies_bouldin=1.5, ari=0.7, nmi=0.6, purity=0.8),
    ("pca", None, 0): dict(silhouette=0.10, calinski_harabasz=50.0, davies_bouldin=0.9, ari=0.1, nmi=0.1, purity=0.4),
}


# ---------------------------------------------------------------------------------- a store written like a sweep's


def start_parent(client: MlflowClient, experiment_id: str, sweep: str, start_time: int, group_by: str = "none") -> str:
    """As tracking.start_parent_run: the sweep tags, the sweep's params, sweep.yaml."""
    run = client.create_run(experiment_id, start_time=start_time, run_name=sweep, tags={"musicvae.sweep": sweep, "musicvae.role": "sweep"})
    params = {"objective": "silhouette,val_loss", "mode": "max,min", "n_tracks": 60, "n_features": 40, "n_labels": 3, "num_samples": 9, "group_by": group_by}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    client.log_text(run.info.run_id, f"name: {sweep}\n", "sweep.yaml")
    return run.info.run_id


def add_trial(client: MlflowClient, experiment_id: str, parent: str, sweep: str, config: dict, metrics: dict, status: str, reason: str = "") -> None:
    """As MLflowTrialCallback: its tags and params, per-epoch losses then the final metrics, why it failed or stopped, the end status.

    One log_batch instead of one per result: the same data, and each write to SQLite is a commit that costs time.
    """
    name = f"{config['model']}-{config['clusterer']}-{next(TRIAL_NUMBERS)}"
    tags = {MLFLOW_PARENT_RUN_ID: parent, MLFLOW_RUN_NAME: name, "musicvae.sweep": sweep, "musicvae.role": "trial"}
    tags.update({f"musicvae.{k}": str(config[k]) for k in ("model", "clusterer", "beta", "latent_dim", "seed") if k in config})
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    losses = {1: {"train_loss": 10.0, "val_loss": 99.0, "epoch": 1}, 2: {"train_loss": 5.0, "val_loss": 98.0, "epoch": 2}}
    epochs = [Metric(key, value, now, epoch) for epoch, values in losses.items() for key, value in values.items()]
    final = [Metric(k, float(v), now, 3) for k, v in metrics.items()]  # the final values, at the last step, as Tune reports them
    params = [Param(k, str(v)) for k, v in sorted(config.items())]
    reasons = [RunTag("musicvae.error" if status == "FAILED" else "musicvae.stopped", reason)] if reason else []
    client.log_batch(run_id, metrics=epochs + final, params=params, tags=reasons)
    client.set_terminated(run_id, status=status)


def final_metrics(values: dict, seed: int) -> dict:
    return {**values, "noise_fraction": 0.0, "largest_cluster": 0.4, "val_loss": 20.0 + seed, "trial_seconds": 2.0 + seed}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=str(root / "artifacts"))
    hour_ago = int(time.time() * 1000) - 3_600_000

    old = start_parent(client, experiment_id, "study", hour_ago)  # an earlier run of the same sweep
    pca = {"model": "pca", "latent_dim": 8, "clusterer": "kmeans", "seed": 0}
    add_trial(client, experiment_id, old, "study", pca, final_metrics(TRIALS["pca", None, 0], 0), "FINISHED")
    # Before the callback marked stopped trials KILLED, they ended FINISHED without the final trial_seconds.
    add_trial(client, experiment_id, old, "study", {"model": "vae", "beta": 1.0, "clusterer": "kmeans", "seed": 0}, {}, "FINISHED")
    client.set_terminated(old, status="FINISHED")

    latest = start_parent(client, experiment_id, "study", hour_ago + 60_000)
    for (model, beta, seed), values in TRIALS.items():
        config = {"model": model, "latent_dim": 8, "clusterer": "kmeans", "seed": seed}
        if beta is not None:
            config.update(beta=beta, epochs=2)
        add_trial(client, experiment_id, latest, "study", config, final_metrics(values, seed), "FINISHED")
    vae = {"model": "vae", "latent_dim": 8, "beta": 4.0, "epochs": 2, "clusterer": "kmeans"}
    add_trial(client, experiment_id, latest, "study", {**vae, "seed": 3}, {}, "FAILED", "ValueError: loss is NaN at epoch 2")
    add_trial(client, experiment_id, latest, "study", {**vae, "beta": 0.5, "seed": 4}, {}, "KILLED", "stopped early by the scheduler after epoch 2")
    client.set_terminated(latest, status="FINISHED")

    other = start_parent(client, experiment_id, "baseline-only", hour_ago, group_by="artist")
    for seed in (0, 1):
        config = {"model": "pca", "latent_dim": 8, "clusterer": "kmeans", "seed": seed}
        add_trial(client, experiment_id, other, "baseline-only", config, final_metrics(TRIALS["pca", None, 0], seed), "FINISHED")
    client.set_terminated(other, status="FINISHED")
    return {"uri": uri, "client": client, "old": old, "latest": latest, "other": other}


@pytest.fixture(scope="module")
def two_sweeps(store: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The report of both sweeps, written once for the tests that read it (figures take a while to draw)."""
    out = tmp_path_factory.mktemp("reports")
    return out, write_report(store["uri"], EXPERIMENT, ["study", "baseline-only"], out)


def markdown_rows(markdown: str) -> dict[str, dict[str, str]]:
    """The first Markdown table as {method: {header: cell}}."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    headers = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(headers, row)) for row in rows}


# ------------------------------------------------------------------------------------------------------ tests


def test_reads_the_latest_parent_run_and_every_trial_status(store: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "PAGE_SIZE", 4)  # 9 children: three pages
    sweep = read_sweep_runs(store["client"], EXPERIMENT, "study")
    assert sweep.run_id == store["latest"]
    assert (sweep.metric, sweep.mode, sweep.objectives) == ("silhouette", "max", ["silhouette", "val_loss"])
    statuses = sorted(record.status for record in sweep.records)
    assert statuses == ["FAILED"] + ["OK"] * 7 + ["STOPPED"]
    failed = next(r for r in sweep.records if r.status == "FAILED")
    assert failed.error == "ValueError: loss is NaN at epoch 2"
    ok = next(r for r in sweep.records if r.status == "OK" and r.config["model"] == "vae")
    assert isinstance(ok.config["beta"], float) and isinstance(ok.config["seed"], int)  # typed like TrialParams
    assert ok.metrics["val_loss"] == 20.0 + ok.config["seed"]  # the final value, not an epoch's


def test_report_tables_match_hand_computed_means_and_bold_the_best(store: dict, two_sweeps: tuple[Path, list[Path]]) -> None:
    out, written = two_sweeps
    folder = out / "study"
    assert {p.name for p in written if p.parent == folder} == REPORT_FILES
    # These runs were logged by hand, without artifacts: the page says what it could not show instead of failing.
    page = (folder / "report.html").read_text()
    assert "logged no tracks.parquet" in page and "logged no embedding.parquet" in page and 'id="methods"' in page

    markdown = (folder / "methods.md").read_text()
    rows = markdown_rows(markdown)
    assert list(rows) == ["vae (β=0.5) + kmeans", "vae (β=4) + kmeans", "pca + kmeans"]  # best mean silhouette first
    low, high, pca = rows["vae (β=0.5) + kmeans"], rows["vae (β=4) + kmeans"], rows["pca + kmeans"]
    assert (low["n"], high["n"], pca["n"]) == ("3", "3", "1")  # the FAILED and KILLED trials are not seeds
    assert low["silhouette"] == "**0.4000 ± 0.1000**"
    assert low["Calinski-Harabasz"] == "**160.0 ± 10.0**"
    assert low["Davies-Bouldin (lower is better)"] == "1.0000 ± 0.2000"
    assert high["silhouette"] == "0.2500 ± 0.0500"
    assert high["Davies-Bouldin (lower is better)"] == "1.5000 ± 0.0000"  # the worst: never bold
    assert high["ARI"] == "**0.6000 ± 0.1000**" and high["NMI"] == "**0.5000 ± 0.1000**" and high["purity"] == "**0.7000 ± 0.1000**"
    assert pca["Davies-Bouldin (lower is better)"] == "**0.9000**"  # lower is better; one seed: no ± std
    assert pca["trial seconds"] == "2.0" and low["trial seconds"] == "3.0 ± 1.0"
    assert pca["Calinski-Harabasz"] == "50.0"  # one decimal in the whole column
    assert "noise fraction" not in low  # no density clusterer: the column says nothing

    assert f"MLflow parent run `{store['latest']}`" in markdown
    assert "Trials: 9 (7 OK, 1 failed, 1 stopped)." in markdown
    assert "- Selected by silhouette (mean over 3 seed(s)): vae (β=0.5) + kmeans: ARI 0.3000, NMI 0.2500" in markdown
    assert "- Oracle (best mean ARI, uses labels): vae (β=4) + kmeans: ARI 0.6000, NMI 0.5000" in markdown
    assert "ValueError: loss is NaN at epoch 2" in markdown and "STOPPED: stopped early by the scheduler after epoch 2" in markdown
    assert "Pareto front over silhouette, val_loss" in markdown

    methods = pd.read_csv(folder / "methods.csv")
    assert methods.loc[0, "silhouette_mean"] == pytest.approx(0.4) and methods.loc[0, "silhouette_std"] == pytest.approx(0.1)
    assert methods.loc[0, "val_loss_mean"] == pytest.approx(21.0)
    trials = pd.read_csv(folder / "trials.csv")
    assert len(trials) == 9 and trials["status"].value_counts().to_dict() == {"OK": 7, "FAILED": 1, "STOPPED": 1}
    assert trials["run_id"].notna().all()

    for name in ("metrics_heatmap.png", "beta_curves.png", "best_methods.png"):
        assert (folder / name).read_bytes()[:8] == PNG_SIGNATURE
    logged = {Path(f.path).name for f in store["client"].list_artifacts(store["latest"], "report")}
    assert logged == REPORT_FILES


def test_several_sweeps_get_a_combined_report_and_no_beta_curves_without_a_vae(store: dict, two_sweeps: tuple[Path, list[Path]]) -> None:
    out, written = two_sweeps
    combined = (out / "report.md").read_text()
    assert out / "report.md" in written
    assert combined.index("## study") < combined.index("## baseline-only")
    assert "![beta curves](study/beta_curves.png)" in combined  # links work from the top folder
    assert not (out / "baseline-only" / "beta_curves.png").exists()
    assert "β curves not drawn: no variational model finished" in (out / "baseline-only" / "methods.md").read_text()
    grouped = "Metadata used: each track's embedding was pooled with its artist group before clustering"
    assert grouped in (out / "baseline-only" / "methods.md").read_text() and grouped not in (out / "study" / "methods.md").read_text()
    logged = {Path(f.path).name for f in store["client"].list_artifacts(store["other"], "report")}
    assert logged == {"methods.md", "methods.csv", "trials.csv", "report.html", "metrics_heatmap.png", "best_methods.png"}


def test_unknown_names_are_errors_that_list_what_exists(store: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no sweep named 'stduy' in experiment 'study-exp' \(sweeps there: baseline-only, study\)"):
        write_report(store["uri"], EXPERIMENT, ["study", "stduy"], tmp_path)
    assert not (tmp_path / "study").exists()  # every name is checked before anything is written
    with pytest.raises(ValueError, match=r"no MLflow experiment named 'nope' \(experiments there: .*study-exp"):
        write_report(store["uri"], "nope", ["study"], tmp_path)
    with pytest.raises(ValueError, match="no MLflow database"):
        write_report(f"sqlite:///{tmp_path / 'missing.db'}", EXPERIMENT, ["study"], tmp_path)
    with pytest.raises(ValueError, match="belongs to sweep 'baseline-only'"):
        write_report(store["uri"], EXPERIMENT, ["study"], tmp_path, run_id=store["other"])
    with pytest.raises(ValueError, match="no MLflow run with id 0123"):
        write_report(store["uri"], EXPERIMENT, ["study"], tmp_path, run_id="0123")
    with pytest.raises(ValueError, match="exactly one sweep name"):
        write_report(store["uri"], EXPERIMENT, ["study", "baseline-only"], tmp_path, run_id=store["old"])


def test_cli_report_picks_a_parent_run_by_id(store: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "reports"
    args = ["report", "study", "--tracking-uri", store["uri"], "--experiment", EXPERIMENT, "--out", str(out)]
    assert main([*args, "--run-id", store["old"]]) == 0
    assert f"Wrote {out / 'study' / 'methods.md'}" in capsys.readouterr().out
    markdown = (out / "study" / "methods.md").read_text()
    assert f"`{store['old']}`" in markdown and "Trials: 2 (1 OK, 0 failed, 1 stopped)." in markdown
    assert "STOPPED: stopped early after epoch 2" in markdown
    assert "β curves not drawn" in markdown
    assert not (out / "report.md").exists()  # one sweep: its own folder is the report
    assert {Path(f.path).name for f in store["client"].list_artifacts(store["old"], "report")} >= {"methods.md", "trials.csv"}

    assert main(["report", "nope", "--tracking-uri", store["uri"], "--experiment", EXPERIMENT, "--out", str(out)]) == 1
    assert "no sweep named 'nope'" in capsys.readouterr().err


def test_curves_and_bars_draw_single_seeds_undefined_means_and_beta_zero(tmp_path: Path) -> None:
    """One seed has no std (no error bar), an undefined mean leaves a gap (bars say n/a), β = 0 needs a symlog axis."""
    nan = float("nan")
    points = pd.DataFrame({"series": ["vae"] * 3, "beta": [0.0, 0.5, 4.0], "silhouette_mean": [0.1, 0.2, nan], "silhouette_std": [nan, 0.05, nan]})
    curves = study_figures.metric_curves_figure(points, "beta", "series", ["silhouette"], title="t", log_x=True)
    assert curves.axes[0].get_xscale() == "symlog"
    assert figures.save_figure(curves, tmp_path / "curves.png").read_bytes()[:8] == PNG_SIGNATURE

    means = pd.DataFrame({"silhouette": [0.2, nan], "ari": [0.1, 0.3]}, index=["vae + kmeans", "pca + kmeans"])
    bars = study_figures.grouped_bars_figure(means, means * 0.1, title="t", hatched=("pca + kmeans",))
    assert [t.get_text() for t in bars.axes[0].texts] == ["n/a"]
    assert figures.save_figure(bars, tmp_path / "bars.png").read_bytes()[:8] == PNG_SIGNATURE
