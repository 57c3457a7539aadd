"""Feature extraction through real Ray Data, the feature store and its cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from musicvae.config import AudioFeatureConfig, DataConfig, FolderSource, ManifestSource
from musicvae.dataset import load_feature_set
from musicvae.features import extract as extract_module
from musicvae.features.extract import ExtractionError, extract_features
from musicvae.sources import folder_tracks

CFG = AudioFeatureConfig(duration=1.0)


@pytest.fixture()
def mixed_folder(tmp_path: Path, tiny_collection: Path, bad_audio: Path) -> Path:
    """Good clips of two genres, the real broken files, and two real FMA MP3s."""
    root = tmp_path / "collection"
    for genre in ("techno", "folk"):
        shutil.copytree(tiny_collection / genre, root / genre)
    shutil.copytree(bad_audio, root / "broken")
    return root


def test_bad_files_are_skipped_and_reported(local_ray, mixed_folder: Path, tmp_path: Path) -> None:
    tracks = folder_tracks(FolderSource(kind="folder", root=str(mixed_folder)))
    store, report = extract_features(tracks, CFG, tmp_path / "cache")
    assert report.n_tracks == 16 and report.n_extracted == 12 and not report.from_cache
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"not_really_audio.ogg", "truncated_header.mp3", "cut_short.mp3", "empty.wav"}
    assert "truncated" in reasons["cut_short.mp3"] and "cannot decode" in reasons["empty.wav"]
    assert "4 skipped" in report.summary() and "cut_short.mp3" in report.summary()

    # The store is plain Parquet + a manifest, in source order, with no failed rows.
    features = pd.read_parquet(Path(report.store) / "features.parquet")
    assert features.shape == (12, 41) and features.notna().all().all()
    assert features["track_id"].tolist() == [t for t in tracks["track_id"] if not t.startswith("broken/")]
    manifest = json.loads((Path(report.store) / "manifest.json").read_text())
    assert manifest["counts"] == {"tracks": 16, "extracted": 12, "skipped": 4}
    assert manifest["config"]["duration"] == 1.0 and "librosa" in manifest["versions"]
    assert len(manifest["skipped"]) == 4


def test_second_run_is_a_cache_hit_that_decodes_nothing(local_ray, tiny_collection: Path, tmp_path: Path, monkeypatch) -> None:
    tracks = folder_tracks(FolderSource(kind="folder", root=str(tiny_collection)))
    first, report1 = extract_features(tracks, CFG, tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the pipeline ran on a cache hit")

    monkeypatch.setattr(extract_module, "run_pipeline", no_decoding)
    second, report2 = extract_features(tracks, CFG, tmp_path)
    assert report2.from_cache and report2.store == report1.store
    pd.testing.assert_frame_equal(first.features, second.features)


def test_changed_file_or_config_gives_a_new_store(local_ray, tiny_collection: Path, tmp_path: Path) -> None:
    root = tmp_path / "c"
    shutil.copytree(tiny_collection / "ambient", root / "ambient")
    tracks = folder_tracks(FolderSource(kind="folder", root=str(root)))
    _, before = extract_features(tracks, CFG, tmp_path / "cache")
    _, other_config = extract_features(tracks, CFG.model_copy(update={"n_mfcc": 20}), tmp_path / "cache")
    victim = Path(tracks["path"][0])
    victim.write_bytes((tiny_collection / "techno").glob("*.flac").__next__().read_bytes())
    _, after = extract_features(tracks, CFG, tmp_path / "cache")
    assert len({before.store, other_config.store, after.store}) == 3
    assert not after.from_cache


def test_every_file_failing_is_a_clear_error(local_ray, bad_audio: Path, tmp_path: Path) -> None:
    shutil.copytree(bad_audio, tmp_path / "only_bad" / "x")
    tracks = folder_tracks(FolderSource(kind="folder", root=str(tmp_path / "only_bad")))
    with pytest.raises(ExtractionError, match="none of the 4 files"):
        extract_features(tracks, CFG, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("manifest.json"))  # nothing half-written is left as complete


def test_feature_set_from_a_manifest(local_ray, tiny_collection: Path, tmp_path: Path) -> None:
    cfg = DataConfig(
        source=ManifestSource(kind="manifest", path=str(tiny_collection / "metadata.csv"), text_columns=["title", "artist"]),
        audio=CFG,
        cache_dir=str(tmp_path),
    )
    data = load_feature_set(cfg)
    assert data.features.shape == (36, 40)
    assert abs(float(data.features.mean())) < 1e-5  # standardised
    assert data.n_labels == 6 and len(data.labels) == 36
    assert list(data.text.columns) == ["track_id", "title", "artist"]
