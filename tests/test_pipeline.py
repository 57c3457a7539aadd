"""A trial's fitted pipeline (musicvae.serving.pipeline): saved as data, loaded without unpickling, and on the tracks it was
fitted on it gives the trial's own clusters back, for every clusterer and model kind."""

from __future__ import annotations

import pickle
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import blobs

from musicvae.config.params import TrialParams
from musicvae.config.sections import TrialsConfig
from musicvae.config.sweep_file import parse_sweep
from musicvae.data.dataset import load_feature_set
from musicvae.serving.pipeline import PipelineError, load_pipeline
from musicvae.trial import run_and_save

FAST = TrialsConfig(figures=[], after_sweep_projections=False)


def write_table(folder: Path, n_per: int = 40, k: int = 3, d: int = 12, artists: bool = False) -> Path:
    x, labels = blobs(n_per=n_per, k=k, d=d, standardise=False)
    table = pd.DataFrame(x * 3 + 5, columns=[f"f{i:02d}" for i in range(d)])
    table.insert(0, "track_id", [f"t{i:03d}" for i in range(len(x))])
    table["genre"] = labels
    if artists:  # artists of one genre each, four tracks apiece: metadata the pooling may use
        table["artist"] = [f"a{label}-{i // 4}" for i, label in enumerate(labels)]
    path = folder / "table.csv"
    table.to_csv(path, index=False)
    return path


def table_data(path: Path, **data):
    source = {"kind": "table", "path": str(path), "label_column": "genre"}
    return load_feature_set(parse_sweep({"name": "x", "data": {"source": source, **data}}).data)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = write_table(tmp_path_factory.mktemp("table"))
    return path, table_data(path)


CASES = [
    {"model": "raw", "clusterer": "kmeans"},
    {"model": "pca", "latent_dim": 4, "clusterer": "agglomerative", "linkage": "average"},
    {"model": "raw", "clusterer": "gmm"},
    {"model": "pca", "latent_dim": 4, "clusterer": "dbscan", "min_samples": 4},
    {"model": "raw", "clusterer": "hdbscan", "min_samples": 4},
    {"model": "vae", "latent_dim": 4, "epochs": 5, "clusterer": "kmeans", "manifold": "umap", "manifold_dim": 2, "manifold_neighbors": 10},
    {"model": "ae", "latent_dim": 4, "epochs": 5, "clusterer": "idec", "idec_epochs": 3},
    {"model": "vade", "latent_dim": 4, "epochs": 6, "vade_pretrain_epochs": 3, "clusterer": "vade"},
]


@pytest.mark.parametrize("config", CASES, ids=lambda c: f"{c['model']}-{c['clusterer']}{'-umap' if 'manifold' in c else ''}")
def test_the_pipeline_gives_the_trials_own_clusters_on_the_tracks_it_was_fitted_on(config: dict, table, tmp_path: Path) -> None:
    path, data = table
    params = TrialParams(**config)
    result, timing = run_and_save(params, data, tmp_path, FAST)
    assert timing["pipeline_seconds"] > 0
    pipeline = load_pipeline(str(tmp_path / "pipeline"))
    frame = pd.read_csv(path).drop(columns=["genre"])
    predicted = pipeline.predict(frame, embedding=True)
    assert predicted["track_id"].tolist() == data.track_ids
    np.testing.assert_array_equal(predicted["cluster"].to_numpy(np.int64), result.clusters)
    model_embedding = result.fitted.pooled if result.fitted.pooled is not None else result.embedding  # before N2D's UMAP stage
    np.testing.assert_allclose(predicted.filter(regex=r"^z\d+$").to_numpy(), model_embedding, atol=1e-5)
    assert (predicted["error"] == "").all()
    # The same through MLflow's own loader, which reads the folder as data through musicvae.serving.pipeline.
    through_mlflow = mlflow.pyfunc.load_model(str(tmp_path / "pipeline")).predict(frame)
    np.testing.assert_array_equal(through_mlflow["cluster"].to_numpy(np.int64), result.clusters)


def test_new_tracks_are_assigned_by_the_documented_rules(table, tmp_path: Path) -> None:
    path, data = table
    frame = pd.read_csv(path).drop(columns=["genre"])
    run_and_save(TrialParams(model="raw", clusterer="kmeans"), data, tmp_path / "kmeans", FAST)
    run_and_save(TrialParams(model="raw", clusterer="dbscan", min_samples=4), data, tmp_path / "dbscan", FAST)
    # A track between two existing ones of cluster c lies nearest cluster c's centroid; far away, DBSCAN calls it noise.
    features = [c for c in frame.columns if c.startswith("f")]
    middle = frame.iloc[[0, 1]][features].mean().to_frame().T.assign(track_id="new")
    far = (frame.iloc[[0]][features] + 1e3).assign(track_id="far")
    kmeans = load_pipeline(str(tmp_path / "kmeans" / "pipeline"))
    own = kmeans.predict(frame.iloc[[0]])["cluster"].iloc[0]
    assert kmeans.predict(middle)["cluster"].iloc[0] == own
    dbscan = load_pipeline(str(tmp_path / "dbscan" / "pipeline"))
    assert dbscan.predict(far)["cluster"].iloc[0] == -1 and np.isnan(dbscan.predict(far)["distance"].iloc[0])


def test_group_pooling_uses_the_groups_of_the_tracks_given(tmp_path: Path) -> None:
    path = write_table(tmp_path, artists=True)
    data = table_data(path, group_by=["artist"])
    params = TrialParams(model="raw", clusterer="kmeans", group_weight=0.8)
    result, _ = run_and_save(params, data, tmp_path / "trial", FAST)
    frame = pd.read_csv(path).drop(columns=["genre"])
    pipeline = load_pipeline(str(tmp_path / "trial" / "pipeline"))
    assert "artist" in pipeline.input_columns()
    np.testing.assert_array_equal(pipeline.predict(frame)["cluster"].to_numpy(np.int64), result.clusters)
    with pytest.raises(PipelineError, match=r"lacks the metadata column\(s\) \['artist'\]"):
        pipeline.predict(frame.drop(columns=["artist"]))


def test_features_that_do_not_match_are_a_clear_error(table, tmp_path: Path) -> None:
    path, data = table
    run_and_save(TrialParams(model="raw", clusterer="kmeans"), data, tmp_path, FAST)
    pipeline = load_pipeline(str(tmp_path / "pipeline"))
    frame = pd.read_csv(path).drop(columns=["genre", "f03", "f07"])
    with pytest.raises(PipelineError, match=r"lacks 2 of the 12 feature columns the pipeline was fitted on: f03, f07"):
        pipeline.predict(frame)


def test_loading_never_unpickles_code(tmp_path: Path, table) -> None:
    """A model whose flavour is a pickled python_model, planted in a run's artifacts: the loader refuses it, and its payload never runs."""
    canary = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (canary,))

    model = tmp_path / "planted" / "pipeline"
    model.mkdir(parents=True)
    (model / "python_model.pkl").write_bytes(pickle.dumps(Payload()))
    (model / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n    python_model: python_model.pkl\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(model), "pipeline")
    with pytest.raises(PipelineError, match="is not a musicvae pipeline .* refusing to load it"):
        load_pipeline(f"runs:/{run.info.run_id}/pipeline")
    assert not canary.exists()
    with pytest.raises(PipelineError, match=r"^no model at runs:/\w+/nothing-here: "):
        load_pipeline(f"runs:/{run.info.run_id}/nothing-here")
