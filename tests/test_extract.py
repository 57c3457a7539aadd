"""Feature extraction through real Ray Data, the feature store and its cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from musicvae.config.sections import AudioFeatureConfig, FolderSource
from musicvae.data.features import extract as extract_module
from musicvae.data.features.extract import ExtractionError, extract_features
from musicvae.data.sources import folder_tracks

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
    extracted, report = extract_features(tracks, CFG, tmp_path / "cache")
    assert report.n_tracks == 16 and report.n_extracted == 12 and report.n_decoded == 16 and not report.from_cache
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"not_really_audio.ogg", "truncated_header.mp3", "cut_short.mp3", "empty.wav"}
    assert "truncated" in reasons["cut_short.mp3"] and "cannot decode" in reasons["empty.wav"]
    assert "4 skipped" in report.summary() and "cut_short.mp3" in report.summary()

    # The store is plain Parquet + a manifest, in source order, with no failed rows.
    features = pd.read_parquet(Path(report.store) / "mfcc.parquet")
    assert features.shape == (12, 41) and features.notna().all().all()
    assert features["track_id"].tolist() == [t for t in tracks["track_id"] if not t.startswith("broken/")]
    manifest = json.loads((Path(report.store) / "manifest.json").read_text())
    assert manifest["counts"] == {"tracks": 16, "extracted": 12, "skipped": 4, "decoded": 16}
    assert manifest["config"]["duration"] == 1.0 and "librosa" in manifest["versions"]
    assert len(manifest["skipped"]) == 4 and all(f["fingerprint"] for f in manifest["files"])


def test_spectrograms_are_tensor_columns_readable_by_pyarrow_and_pandas(local_ray, tiny_collection: Path, tmp_path: Path) -> None:
    cfg = CFG.model_copy(update={"features": ["mfcc", "mfcc_spectrogram"]})
    tracks = folder_tracks(FolderSource(kind="folder", root=str(tiny_collection)))
    extracted, report = extract_features(tracks, cfg, tmp_path)
    assert extracted.arrays["mfcc_spectrogram"].shape == (36, 20, 128)
    table = pq.read_table(Path(report.store) / "mfcc_spectrogram.parquet")
    tensor = table.column("value").combine_chunks().to_numpy_ndarray()
    np.testing.assert_array_equal(tensor, extracted.arrays["mfcc_spectrogram"])
    frame = pd.read_parquet(Path(report.store) / "mfcc_spectrogram.parquet")
    assert frame["value"][0].shape == (20 * 128,)
    # One decode per file gave both kinds: the summary is the mean over time of the same MFCCs.
    full = extract_features(tracks, cfg.model_copy(update={"n_mfcc": 20, "frames": 8}), tmp_path)[0]
    assert full.arrays["mfcc"].shape == (36, 20)


def test_second_run_is_a_cache_hit_that_decodes_nothing(local_ray, tiny_collection: Path, tmp_path: Path, monkeypatch) -> None:
    tracks = folder_tracks(FolderSource(kind="folder", root=str(tiny_collection)))
    first, report1 = extract_features(tracks, CFG, tmp_path)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the pipeline ran on a cache hit")

    monkeypatch.setattr(extract_module, "run_pipeline", no_decoding)
    second, report2 = extract_features(tracks, CFG, tmp_path)
    assert report2.from_cache and report2.store == report1.store and report2.n_decoded == 0
    assert first.track_ids == second.track_ids
    np.testing.assert_array_equal(first.arrays["mfcc"], second.arrays["mfcc"])


def test_a_changed_file_is_the_only_one_decoded_again(local_ray, tiny_collection: Path, bad_audio: Path, tmp_path: Path) -> None:
    root = tmp_path / "c"
    shutil.copytree(tiny_collection / "ambient", root / "ambient")
    shutil.copy(bad_audio / "cut_short.mp3", root / "ambient" / "cut_short.mp3")
    tracks = folder_tracks(FolderSource(kind="folder", root=str(root)))
    before, report_before = extract_features(tracks, CFG, tmp_path / "cache")
    assert report_before.n_decoded == 7 and report_before.n_extracted == 6

    victim_id, victim = next((t, Path(p)) for t, p in zip(tracks["track_id"], tracks["path"]) if p.endswith(".flac"))
    victim.write_bytes(next((tiny_collection / "techno").glob("*.flac")).read_bytes())
    after, report_after = extract_features(tracks, CFG, tmp_path / "cache")
    assert report_after.store != report_before.store and not report_after.from_cache
    assert report_after.n_decoded == 1  # the five unchanged clips and the known-broken file are reused
    assert [s.reason for s in report_after.skipped] == [s.reason for s in report_before.skipped]
    changed = after.track_ids.index(victim_id)
    assert not np.allclose(after.arrays["mfcc"][changed], before.arrays["mfcc"][changed])
    unchanged = [i for i in range(6) if i != changed]
    np.testing.assert_array_equal(after.arrays["mfcc"][unchanged], before.arrays["mfcc"][unchanged])
    # A different feature config never borrows rows: it is its own feature set.
    _, other = extract_features(tracks, CFG.model_copy(update={"n_mfcc": 20}), tmp_path / "cache")
    assert other.n_decoded == 7 and len({report_before.store, report_after.store, other.store}) == 3


def test_an_interrupted_write_is_never_read_as_complete(local_ray, tiny_collection: Path, tmp_path: Path) -> None:
    tracks = folder_tracks(FolderSource(kind="folder", root=str(tiny_collection / "folk")))
    _, report = extract_features(tracks, CFG, tmp_path)
    store = Path(report.store)
    (store / "manifest.json").unlink()  # as if the process died before the store was complete
    (store.parent / ".tmp-deadbeef").mkdir()  # and a leftover temp folder
    _, again = extract_features(tracks, CFG, tmp_path)
    assert not again.from_cache and again.n_decoded == 6 and (store / "manifest.json").exists()


def test_every_file_failing_is_a_clear_error(local_ray, bad_audio: Path, tmp_path: Path) -> None:
    shutil.copytree(bad_audio, tmp_path / "only_bad" / "x")
    tracks = folder_tracks(FolderSource(kind="folder", root=str(tmp_path / "only_bad")))
    with pytest.raises(ExtractionError, match="none of the 4 files"):
        extract_features(tracks, CFG, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("manifest.json"))  # nothing half-written is left as complete
