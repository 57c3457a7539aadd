"""``musicvae assign``: a fitted pipeline over a whole collection on Ray Data, resumable, with clear errors and nothing half-written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import blobs, stop_server

from musicvae.cli import main
from musicvae.config.params import TrialParams
from musicvae.config.sections import TrialsConfig
from musicvae.config.sweep_file import parse_sweep
from musicvae.data.dataset import load_feature_set
from musicvae.serving.assign import PARTS, assign, embed_collection, read_collection
from musicvae.serving.pipeline import PipelineError, load_pipeline
from musicvae.trial import run_and_save

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fitted(local_ray, tiny_collection: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PCA + K-Means pipeline fitted on the tiny demo collection (audio: decoded and extracted like a sweep)."""
    folder = tmp_path_factory.mktemp("fitted")
    raw = {"name": "x", "data": {"source": {"kind": "folder", "root": str(tiny_collection)}, "audio": {"duration": 1.0}, "cache_dir": str(folder / "cache")}}
    data = load_feature_set(parse_sweep(raw).data)
    run_and_save(TrialParams(model="pca", latent_dim=4, clusterer="kmeans"), data, folder / "trial", TrialsConfig(figures=[]))
    return folder / "trial" / "pipeline"


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory, bad_audio: Path) -> Path:
    """Another demo collection (generator seed 2), with a corrupt file among its tracks."""
    from musicvae.data.synth import synthesize_collection

    out = tmp_path_factory.mktemp("other")
    synthesize_collection(out, per_genre=4, seed=2, clip_seconds=2.0)
    shutil.copy(bad_audio / "cut_short.mp3", out / "rock" / "cut_short.mp3")
    return out


def test_assign_writes_every_file_and_agrees_with_predict(fitted: Path, collection: Path, tmp_path: Path) -> None:
    report = assign(str(fitted), collection, tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["assignments.csv", "assignments.parquet", "playlists", "skipped.csv", "summary.md"]
    table = pd.read_parquet(out / "assignments.parquet")
    assert list(table.columns[:5]) == ["track_id", "path", "cluster", "distance", "confidence"]
    assert len(table) == 24 and report.n_assigned == 24 and report.n_tracks == 25
    skipped = pd.read_csv(out / "skipped.csv")
    assert skipped["track_id"].tolist() == ["rock/cut_short"] and "truncated" in skipped["reason"].iloc[0]
    # The same clusters as the pipeline's own predict, one process, no Ray.
    serial = load_pipeline(str(fitted)).predict(table[["track_id", "path"]])
    assert serial["cluster"].tolist() == table["cluster"].tolist()
    np.testing.assert_allclose(serial["distance"], table["distance"], rtol=1e-6)
    for cluster, group in table.groupby("cluster"):
        playlist = (out / "playlists" / f"cluster_{cluster}.m3u").read_text().splitlines()
        assert playlist[0] == "#EXTM3U" and playlist[1:] == group["path"].tolist()
    summary = (out / "summary.md").read_text()
    assert "24 tracks in" in summary and all(f"## cluster {c}: {n} tracks" in summary for c, n in table["cluster"].value_counts().items())
    assert not (out / PARTS).exists()


def test_an_interrupted_assign_continues_where_it_stopped(fitted: Path, collection: Path, tmp_path: Path) -> None:
    pipeline = load_pipeline(str(fitted))
    tracks = read_collection(collection, pipeline)
    embed_collection(tracks.iloc[:10], pipeline, tmp_path / "out" / PARTS)  # the blocks a first, interrupted run finished
    report = assign(str(fitted), collection, tmp_path / "out")
    assert report.resumed == 10 and report.n_assigned == 24
    fresh = assign(str(fitted), collection, tmp_path / "fresh")
    assert fresh.resumed == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "assignments.parquet"), pd.read_parquet(tmp_path / "fresh" / "assignments.parquet"))


def test_the_gpu_arrangement_gives_the_same_embeddings(fitted: Path, collection: Path, tmp_path: Path) -> None:
    """Decoding in CPU tasks and the model on actors (a cluster with GPUs), here on CPUs, against one actor per CPU doing both."""
    pipeline = load_pipeline(str(fitted))
    tracks = read_collection(collection, pipeline)
    together, _ = embed_collection(tracks, pipeline, tmp_path / "together")
    apart, _ = embed_collection(tracks, pipeline, tmp_path / "apart", split=True)
    pd.testing.assert_frame_equal(together.sort_values("track_id", ignore_index=True), apart.sort_values("track_id", ignore_index=True))


@pytest.mark.parametrize(
    "make_source, message",
    [
        (lambda tmp: tmp / "empty", r"no .* files under"),
        (lambda tmp: tmp / "missing", r"no such file or folder"),
        (
            lambda tmp: pd.DataFrame({"track_id": ["a"], "mfcc_mean_00": [1.0]}).to_csv(tmp / "table.csv", index=False) or tmp / "table.csv",
            "is a feature table, but the pipeline was fitted on audio files",
        ),
    ],
)
def test_bad_sources_are_one_line_errors_and_nothing_is_written(fitted: Path, tmp_path: Path, capsys, make_source, message: str) -> None:
    (tmp_path / "empty").mkdir()
    source = make_source(tmp_path)
    assert main(["assign", str(fitted), str(source), "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert __import__("re").search(message, error), error
    assert not (tmp_path / "out").exists()


def test_a_model_that_does_not_exist_and_a_run_without_a_pipeline(tmp_path: Path, collection: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        mlflow.log_text("no pipeline here", "notes.txt")
    for model, said in [("models:/nothing@champion", "no model at models:/nothing@champion"), (f"runs:/{run.info.run_id}/pipeline", "no model at runs:/")]:
        assert main(["assign", model, str(collection), "--out", str(tmp_path / "out"), "--tracking-uri", uri]) == 1
        error = capsys.readouterr().err
        assert said in error and len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "out").exists()


def test_a_pipeline_fitted_on_a_table_refuses_tables_with_other_columns(tmp_path: Path) -> None:
    """Another n_mfcc gives other columns: the pipeline names the ones it misses."""

    x, labels = blobs(d=6, standardise=False)
    table = pd.DataFrame(x, columns=[f"mfcc_mean_{i:02d}" for i in range(6)]).assign(track_id=[f"t{i}" for i in range(len(x))], genre=labels)
    table.to_csv(tmp_path / "fit.csv", index=False)
    data = load_feature_set(parse_sweep({"name": "x", "data": {"source": {"kind": "table", "path": str(tmp_path / "fit.csv"), "label_column": "genre"}}}).data)
    run_and_save(TrialParams(model="raw", clusterer="kmeans"), data, tmp_path / "trial", TrialsConfig(figures=[]))
    other = table.drop(columns=["genre"]).rename(columns={"mfcc_mean_05": "mfcc_mean_20"})
    other.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(PipelineError, match=r"lacks 1 of the 6 feature columns the pipeline was fitted on: mfcc_mean_05"):
        assign(str(tmp_path / "trial" / "pipeline"), tmp_path / "other.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_champion_labels_another_collection_from_the_cli_and_over_a_real_model_server(tmp_path: Path, tiny_collection: Path) -> None:
    """A real sweep registers its champion; `musicvae assign models:/...@champion` labels a second demo collection, and
    `mlflow models serve` of the same champion answers /invocations with the same clusters."""
    import json

    from musicvae.tune.localcluster import free_port

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = {
        "name": "champion",
        "data": {"source": {"kind": "folder", "root": str(tiny_collection)}, "audio": {"duration": 1.0}, "cache_dir": str(tmp_path / "cache")},
        "space": {"model": "pca", "latent_dim": 4, "clusterer": ["kmeans", "agglomerative"], "n_clusters": 6},
        "search": {"metric": "input_silhouette", "sampler": "grid", "max_concurrent_trials": 2},
        "trials": {"figures": [], "after_sweep_projections": False},
        "tracking": {"uri": uri, "experiment": "champion"},
        "storage_path": str(tmp_path / "ray_results"),
    }
    (tmp_path / "sweep.yaml").write_text(json.dumps(sweep))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # serve runs uvicorn
    done = subprocess.run(
        [sys.executable, "-m", "musicvae.cli", "sweep", str(tmp_path / "sweep.yaml")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0 and "Champion: models:/champion@champion" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    second = tmp_path / "second"
    assert main(["data", "synth", "--out", str(second), "--seed", "1", "--per-genre", "5", "--seconds", "2"]) == 0
    done = subprocess.run(
        [sys.executable, "-m", "musicvae.cli", "assign", "models:/champion@champion", str(second), "--out", str(tmp_path / "labelled")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assigned = pd.read_csv(tmp_path / "labelled" / "assignments.csv")
    assert len(assigned) == 30 and (tmp_path / "labelled" / "summary.md").exists() and list((tmp_path / "labelled" / "playlists").glob("*.m3u"))

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/champion@champion", "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"),
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        body = {"dataframe_split": {"columns": ["track_id", "path"], "data": assigned[["track_id", "path"]].values.tolist()}}
        answer = requests.post(f"{url}/invocations", json=body, timeout=300)
        assert answer.ok, answer.text
        served = pd.DataFrame(answer.json()["predictions"])
        assert served["track_id"].tolist() == assigned["track_id"].tolist()
        assert served["cluster"].tolist() == assigned["cluster"].tolist()
    finally:
        stop_server(server)
