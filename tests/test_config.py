from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from musicvae.config import SweepFileError, TableSource, load_sweep, parse_sweep

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["quickstart.yaml", "fma_seed_features.yaml"])
def test_shipped_sweep_files_are_valid(name: str) -> None:
    cfg = load_sweep(REPO / "sweeps" / name)
    assert cfg.search.metric == "silhouette"  # the default objective is label-free
    assert not cfg.search.uses_labels


def test_fma_sweep_reads_the_table_with_genre_as_label() -> None:
    cfg = load_sweep(REPO / "sweeps" / "fma_seed_features.yaml")
    assert isinstance(cfg.data.source, TableSource)
    assert cfg.data.source.label_column == "genre"


def _error(raw: dict) -> str:
    with pytest.raises(SweepFileError) as info:
        parse_sweep(raw, origin="test.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    "raw, key, fragment",
    [
        ({"name": "x", "serch": {}}, "serch", "unknown key"),
        ({"name": "x", "search": {"metrik": "ari"}}, "search.metrik", "unknown key"),
        ({"name": "x", "space": {"model": ["pca", "svm"]}}, "space.model", "'svm'"),
        ({"name": "x", "space": {"bta": [1.0]}}, "space.bta", "unknown parameter"),
        ({"name": "x", "space": {"beta": {"low": 5, "high": 1}}}, "space.beta", "low"),
        ({"name": "x", "space": {"beta": {"low": 0, "high": 1, "log": True}}}, "space.beta", "log range"),
        ({"name": "x", "space": {"latent_dim": [1]}}, "space.latent_dim", "greater than or equal to 2"),
        ({"name": "x", "space": {"clusterer": {"low": 1, "high": 2}}}, "space.clusterer", "categorical"),
        ({"name": "x", "space": {}}, "space", "empty"),
        ({"name": "x", "resources": {"gpus_per_trial": 1.5}}, "resources.gpus_per_trial", "fraction"),
        ({"name": "x", "search": {"num_samples": 0}}, "search.num_samples", "greater than or equal to 1"),
        ({"name": "x", "search": {"metric": "silhouette", "mode": "min"}}, "search", "contradicts"),
        ({"name": "x", "search": {"metric": "val_loss"}}, "val_loss", "pca"),
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
