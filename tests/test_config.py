from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from musicvae.cli import shared_training
from musicvae.config.sections import TableSource
from musicvae.config.sweep_file import SweepFileError, load_sweep, parse_sweep

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "sweeps").glob("*.yaml")))
def test_shipped_sweep_files_are_valid(name: str) -> None:
    cfg = load_sweep(REPO / "sweeps" / name)
    # The searcher's objective is label-free and comparable across trials (the own-space silhouette rewards collapsed latents).
    assert cfg.search.primary == "input_silhouette"
    assert not cfg.search.uses_labels
    assert cfg.selection.rule == "per_input"


@pytest.mark.parametrize("task", ["easy", "medium", "hard"])
def test_fma_sweeps_read_the_table_with_genre_as_label_and_repeat_seeds(task: str) -> None:
    cfg = load_sweep(REPO / "sweeps" / f"{task}.yaml")
    assert isinstance(cfg.data.source, TableSource)
    assert cfg.data.source.label_column == "genre"
    assert cfg.search.sampler == "grid" and len(cfg.space["seed"]) >= 3
    if task != "easy":
        assert cfg.data.text is not None and "genre" not in cfg.data.text.columns


def _error(raw: dict) -> str:
    with pytest.raises(SweepFileError) as info:
        parse_sweep(raw, origin="test.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    "raw, key, fragment",
    [
        ({"name": "x", "serch": {}}, "serch", "unknown key"),
        ({"name": "x", "search": {"metrik": "ari"}}, "search.metrik", "unknown key"),
        ({"name": "x", " ": None}, "' '", "unknown key"),  # a blank key is quoted, not printed as nothing (found by the fuzz test)
        ({"name": "x", "space": {"model": ["pca", "svm"]}}, "space.model", "'svm'"),
        ({"name": "x", "space": {"bta": [1.0]}}, "space.bta", "unknown parameter"),
        ({"name": "x", "space": {"beta": {"low": 5, "high": 1}}}, "space.beta", "low"),
        ({"name": "x", "space": {"beta": {"low": 0, "high": 1, "log": True}}}, "space.beta", "log range"),
        ({"name": "x", "space": {"latent_dim": [1]}}, "space.latent_dim", "greater than or equal to 2"),
        ({"name": "x", "space": {"clusterer": {"low": 1, "high": 2}}}, "space.clusterer", "categorical"),
        ({"name": "x", "space": {}}, "space", "empty"),
        ({"name": "x", "resources": {"gpus_per_trial": 1.5}}, "resources.gpus_per_trial", "fraction"),
        ({"name": "x", "search": {"num_samples": 0}}, "search.num_samples", "greater than or equal to 1"),
        ({"name": "x", "search": {"metric": "silhouette", "mode": "min"}}, "search.mode", "contradicts"),
        ({"name": "x", "search": {"metric": ["silhouette", "davies_bouldin"], "mode": ["max", "max"]}}, "search.mode", "'davies_bouldin'"),
        ({"name": "x", "search": {"metric": ["silhouette", "ari"], "mode": "max"}}, "search.mode", "one per objective"),
        ({"name": "x", "search": {"metric": ["silhouette", "silhouette"]}}, "search.metric", "at most once"),
        ({"name": "x", "search": {"metric": []}}, "search.metric", "at least one"),
        ({"name": "x", "search": {"sampler": "cmaes"}}, "search.sampler", "'cmaes'"),
        ({"name": "x", "search": {"time_budget_s": 0}}, "search.time_budget_s", "greater than 0"),
        ({"name": "x", "search": {"points_to_evaluate": [{"beta": 2.0}]}}, "search.points_to_evaluate.0.beta", "not a parameter of the space"),
        (
            {"name": "x", "space": {"model": ["pca", "vae"]}, "search": {"points_to_evaluate": [{"model": "ae"}]}},
            "search.points_to_evaluate.0.model",
            "not one of",
        ),
        (
            {"name": "x", "space": {"beta": {"low": 0.5, "high": 4}}, "search": {"points_to_evaluate": [{"beta": 8}]}},
            "search.points_to_evaluate.0.beta",
            "outside",
        ),
        (
            {"name": "x", "space": {"model": ["pca", "vae"], "beta": [1, 4]}, "search": {"points_to_evaluate": [{"model": "pca", "beta": 4}]}},
            "search.points_to_evaluate.0.beta",
            "no effect",
        ),
        ({"name": "x", "search": {"sampler": "grid"}, "scheduler": {"kind": "asha"}}, "scheduler.kind", "holes"),
        ({"name": "x", "scheduler": {"kind": "hyperband"}}, "scheduler.kind", "'hyperband'"),
        ({"name": "x", "scheduler": {"kind": "asha", "reduction_factor": 1}}, "scheduler.reduction_factor", "greater than 1"),
        ({"name": "x", "trials": {"max_retries": -1}}, "trials.max_retries", "greater than or equal to 0"),
        ({"name": "x", "resources": {"gpus_per_trial": "half"}}, "resources.gpus_per_trial", "valid number"),
        ({"name": "x", "search": {"metric": "val_loss"}}, "search.metric", "pca"),
        ({"name": "x", "space": {"model": ["vae", "multimodal_vae"]}}, "space.model", "data.text"),
        ({"name": "x", "data": {"source": {"kind": "table", "path": "t.csv"}}, "space": {"model": "conv_vae"}}, "space.model", "spectrograms"),
        (
            {"name": "x", "space": {"model": "conv_vae", "spectrogram": "logmel"}, "data": {"audio": {"features": ["mfcc", "mfcc_spectrogram"]}}},
            "space.spectrogram",
            "logmel",
        ),
        ({"name": "x", "space": {"model": "conv_vae"}}, "space.spectrogram", "mfcc_spectrogram"),
        ({"name": "x", "space": {"clusterer": ["kmeans", "spectral"]}}, "space.clusterer", "'spectral'"),
        # musicnn: a layer that does not exist, a model that does not exist, settings for features not extracted, an input not extracted
        ({"name": "x", "data": {"audio": {"features": ["mfcc", "musicnn"], "musicnn": {"layer": "cnn4"}}}}, "data.audio.musicnn.layer", "'cnn4'"),
        ({"name": "x", "data": {"audio": {"features": ["mfcc", "musicnn"], "musicnn": {"models": ["MSD", "GTZAN"]}}}}, "data.audio.musicnn.models", "'GTZAN'"),
        ({"name": "x", "data": {"audio": {"musicnn": {"models": ["MTT"]}}}}, "data.audio", "'musicnn' is not in features"),
        ({"name": "x", "space": {"input": ["mfcc", "musicnn_msd"]}}, "space.input", "add musicnn to data.audio.features"),
        (
            {"name": "x", "data": {"audio": {"features": ["mfcc", "musicnn"]}}, "space": {"input": "musicnn_mtt"}},
            "space.input",
            "['MTT'] to data.audio.musicnn.models",
        ),
        ({"name": "x", "data": {"source": {"kind": "table", "path": "t.csv"}}, "space": {"input": "musicnn_msd"}}, "space.input", "need audio"),
        ({"name": "x", "space": {"input": "vggish"}}, "space.input", "'vggish'"),
        ({"name": "x", "space": {"linkage": "median"}}, "space.linkage", "'median'"),
        ({"name": "x", "space": {"eps": [0.0]}}, "space.eps", "greater than 0"),
        ({"name": "x", "search": {"sampler": "grid"}, "space": {"beta": {"low": 0.5, "high": 4}}}, "search.sampler", "space.beta is a range"),
        ({"name": "x", "search": {"sampler": "grid", "num_samples": 5}, "space": {"model": ["pca", "raw"]}}, "search.num_samples", "2 configurations"),
        ({"name": "x", "resources": {"device": "cuda"}}, "resources", "gpus_per_trial"),
        ({"name": "x", "trials": {"figures": ["umap", "pca"]}}, "trials.figures", "'pca'"),
        ({"name": "x", "data": {"source": {"kind": "fma", "metadata_dir": "m"}}}, "data.source.fma.audio_dir", "Field required"),
        ({"name": "x", "data": {"source": {"kind": "mp4"}}}, "data.source", "kind"),
        ({"name": "x y"}, "name", "pattern"),
        ({"space": {"model": "pca"}}, "name", "Field required"),
    ],
)
def test_bad_sweep_file_names_the_key(raw: dict, key: str, fragment: str) -> None:
    message = _error(raw)
    assert key in message
    assert fragment in message


def test_manifest_text_columns_cannot_hold_the_label() -> None:
    message = _error({"name": "x", "data": {"source": {"kind": "manifest", "path": "m.csv", "text_columns": ["title", "label"]}}})
    assert "label leak" in message


def test_cli_rejects_a_bad_file_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nspace:\n  model: [pca, svm]\n")
    proc = subprocess.run([sys.executable, "-m", "musicvae.cli", "sweep", str(bad), "--dry-run"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "space.model" in proc.stderr and "svm" in proc.stderr


def test_cli_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "musicvae.cli", "sweep", str(REPO / "sweeps" / "quickstart.yaml"), "--dry-run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Search space" in proc.stdout and "beta" in proc.stdout and "Dry run" in proc.stdout
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / ".musicvae").exists()


def test_yaml_syntax_error_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SweepFileError, match="not valid YAML"):
        load_sweep(bad)


def test_grid_budget_is_the_number_of_distinct_configurations() -> None:
    cfg = parse_sweep(
        {
            "name": "x",
            "search": {"sampler": "grid"},
            "space": {"model": ["pca", "vae"], "beta": [0.5, 4.0], "clusterer": ["kmeans", "dbscan"], "eps": [0.5, 1.0], "seed": [0, 1]},
        }
    )
    # pca: 1 x (kmeans + 2 dbscan eps) = 3; vae: 2 beta x 3 = 6; times 2 seeds
    assert cfg.num_samples == (3 + 6) * 2
    # The 12 vae trials cluster 2 beta x 2 seeds = 4 trained models three ways (musicvae.training.trained_models)
    assert shared_training(cfg).startswith("4 models for 12 neural trials")
    vade = cfg.model_copy(update={"space": {**cfg.space, "model": ["vade"], "n_clusters": [3, 4], "clusterer": ["kmeans", "agglomerative"]}})
    vade = parse_sweep(vade.model_dump(mode="json"))
    assert shared_training(vade).startswith("8 models for 16 neural trials")  # VaDE's n_clusters sizes its prior: trained per k
    assert parse_sweep({"name": "x"}).num_samples == 8


def test_a_key_with_a_line_break_cannot_break_the_message_apart() -> None:
    """Found by tests/test_config_fuzz.py: a key of "\\r" (or YAML's "\\N", U+0085) split the error over lines."""
    for key in ("\r", "\x85", "a\u2028b"):
        with pytest.raises(SweepFileError) as error:
            parse_sweep({"name": "x", "space": {key: 1}, key: 2})
        lines = str(error.value).splitlines()
        assert len(lines) == 3 and all(line.startswith("  ") for line in lines[1:]), lines
