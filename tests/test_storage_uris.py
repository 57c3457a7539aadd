"""Sources and the feature store behind filesystem URIs, as on a cluster with shared storage.

``file://`` URIs go through the same pyarrow code path as ``s3://`` (listing,
reading bytes, writing the store), and a real S3 server (moto, on loopback)
checks the object-store specifics: no folder renames, Last-Modified as mtime.
Everything runs through real Ray Data; nothing is mocked.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from musicvae.config.sections import AudioFeatureConfig, FMASource, FolderSource, SynthSource, TableSource
from musicvae.data.features import extract as extract_module
from musicvae.data.features.audio import AudioError, decode
from musicvae.data.features.extract import extract_features
from musicvae.data.features.store import ExtractedFeatures
from musicvae.data.locations import fingerprint, resolve
from musicvae.data.sources import fma_tracks, folder_tracks, list_tracks, read_feature_table

CFG = AudioFeatureConfig(duration=1.0)


def no_decoding(*args, **kwargs):
    raise AssertionError("the pipeline ran on a cache hit")


@pytest.fixture(scope="module")
def plain_run(local_ray, tiny_collection: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, ExtractedFeatures]:
    """The reference: the tiny collection read from a plain path, the store in a plain folder."""
    tracks = folder_tracks(FolderSource(kind="folder", root=str(tiny_collection)))
    features, _ = extract_features(tracks, CFG, tmp_path_factory.mktemp("plain-cache"))
    return tracks, features


def assert_same_as_plain(tracks: pd.DataFrame, features: ExtractedFeatures, plain_run: tuple[pd.DataFrame, ExtractedFeatures]) -> None:
    plain_tracks, plain = plain_run
    assert tracks["track_id"].tolist() == plain_tracks["track_id"].tolist()
    assert tracks["label"].tolist() == plain_tracks["label"].tolist()
    assert features.track_ids == plain.track_ids and not features.skipped
    np.testing.assert_array_equal(features.arrays["mfcc"], plain.arrays["mfcc"])


# ------------------------------------------------------------------- file://


@pytest.mark.slow
def test_file_uris_give_the_plain_path_features_and_reuse_the_store(plain_run, tiny_collection: Path, tmp_path: Path, monkeypatch) -> None:
    root, cache = tiny_collection.as_uri(), (tmp_path / "cache").as_uri()
    tracks = folder_tracks(FolderSource(kind="folder", root=root))
    assert all(p.startswith(root + "/") for p in tracks["path"])
    features, report = extract_features(tracks, CFG, cache)
    assert report.n_decoded == 36 and not report.from_cache and report.store.startswith(cache + "/features/")
    assert_same_as_plain(tracks, features, plain_run)

    # The store is plain Parquet + manifest where the URI points, fingerprinted through pyarrow.
    (manifest_path,) = (tmp_path / "cache" / "features").glob("*/*/manifest.json")
    assert manifest_path.parent.as_uri() == report.store
    manifest = json.loads(manifest_path.read_text())
    assert manifest["counts"]["extracted"] == 36 and all(f["fingerprint"] for f in manifest["files"])
    assert pd.read_parquet(manifest_path.parent / "mfcc.parquet").shape == (36, 41)

    monkeypatch.setattr(extract_module, "run_pipeline", no_decoding)
    again, report2 = extract_features(tracks, CFG, cache)
    assert report2.from_cache and report2.store == report.store and report2.n_decoded == 0
    np.testing.assert_array_equal(again.arrays["mfcc"], features.arrays["mfcc"])


@pytest.mark.slow
def test_corrupt_files_under_a_uri_folder_are_skipped_and_reported(local_ray, tiny_collection: Path, bad_audio: Path, tmp_path: Path) -> None:
    root = tmp_path / "collection"
    shutil.copytree(tiny_collection / "folk", root / "folk")
    shutil.copytree(bad_audio, root / "broken")
    tracks = folder_tracks(FolderSource(kind="folder", root=root.as_uri()))
    extracted, report = extract_features(tracks, CFG, (tmp_path / "cache").as_uri())
    assert report.n_tracks == 10 and report.n_extracted == 6
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in report.skipped}
    assert set(reasons) == {"not_really_audio.ogg", "truncated_header.mp3", "cut_short.mp3", "empty.wav"}
    assert "truncated" in reasons["cut_short.mp3"] and "cannot decode" in reasons["empty.wav"]
    assert "BytesIO" not in report.summary() and "cut_short.mp3" in report.summary()


def test_decoding_from_a_uri_reports_what_a_plain_path_reports(bad_audio: Path, tmp_path: Path) -> None:
    """Same reasons, naming the file as given (not the in-memory buffer); libsndfile words one differently."""
    for file in [*sorted(bad_audio.iterdir()), tmp_path / "missing.flac"]:
        reasons = []
        for location in (str(file), file.as_uri()):
            with pytest.raises(AudioError) as error:
                decode(location, CFG)
            reasons.append(str(error.value).replace(file.as_uri(), str(file)))
        assert reasons[0].split(":")[0] == reasons[1].split(":")[0], file.name  # "cannot decode", "truncated", "file not found"
        if file.name != "truncated_header.mp3":  # from memory libsndfile says "Format not recognised", from a path "not a regular file"
            assert reasons[0] == reasons[1]


def test_fma_layout_and_tables_from_file_uris(fma_clips: Path, tmp_path: Path) -> None:
    labels = pd.read_csv(fma_clips / "labels.csv")
    columns = pd.MultiIndex.from_tuples([("set", "subset"), ("track", "genre_top"), ("track", "title"), ("artist", "name"), ("album", "title")])
    rows = [("small", r.genre, r.title, r.artist, "An Album") for r in labels.itertuples()]
    metadata = pd.DataFrame(rows, index=pd.Index(labels["track_id"], name="track_id"), columns=columns)
    (tmp_path / "meta").mkdir()
    metadata.to_csv(tmp_path / "meta" / "tracks.csv")
    audio_dir = fma_clips / "fma_small"
    plain = fma_tracks(FMASource(kind="fma", metadata_dir=str(tmp_path / "meta"), audio_dir=str(audio_dir)))
    uri = fma_tracks(FMASource(kind="fma", metadata_dir=(tmp_path / "meta").as_uri(), audio_dir=audio_dir.as_uri()))
    pd.testing.assert_frame_equal(uri.drop(columns="path"), plain.drop(columns="path"))
    assert [urlsplit(p).path for p in uri["path"]] == plain["path"].tolist()
    assert all(fingerprint(p) == fingerprint(q) is not None for p, q in zip(uri["path"], plain["path"]))

    table = pd.DataFrame({"track_id": ["a", "b", "c"], "f0": [0.0, 1.0, 2.0], "f1": [3.0, 4.0, 5.0], "label": ["x", "y", "x"]})
    table.to_csv(tmp_path / "t.csv", index=False)
    read = read_feature_table(TableSource(kind="table", path=(tmp_path / "t.csv").as_uri()))
    assert read.track_ids == ["a", "b", "c"] and read.feature_names == ["f0", "f1"] and read.labels == ["x", "y", "x"]


# -------------------------------------------------------------- S3 (moto)


@pytest.fixture(scope="module")
def s3():
    """A real S3 API on loopback (moto's server): a bucket, and a function from "bucket/key" to an s3:// URI.

    The URI carries the endpoint and moto's dummy keys, so Ray workers need no
    environment; real deployments leave credentials to the environment.
    """
    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"127.0.0.1:{port}"
    fs = pafs.S3FileSystem(
        access_key="testing", secret_key="testing", region="us-east-1", scheme="http", endpoint_override=endpoint, allow_bucket_creation=True
    )
    fs.create_dir("music")
    yield fs, lambda key: f"s3://testing:testing@{key}?endpoint_override={endpoint}&scheme=http&region=us-east-1"
    server.stop()


@pytest.mark.slow
def test_s3_collection_and_store_match_the_plain_run_and_only_a_replaced_object_is_decoded_again(plain_run, s3, tiny_collection: Path, monkeypatch) -> None:
    fs, uri = s3
    pafs.copy_files(str(tiny_collection), "music/collection", destination_filesystem=fs)
    tracks = folder_tracks(FolderSource(kind="folder", root=uri("music/collection")))
    assert tracks["path"][0].startswith("s3://") and len(tracks) == 36
    features, report = extract_features(tracks, CFG, uri("music/cache"))
    assert report.n_decoded == 36 and report.store.startswith("s3://")
    assert_same_as_plain(tracks, features, plain_run)
    store_fs, store = resolve(report.store)
    assert {f.base_name for f in store_fs.get_file_info(pafs.FileSelector(store))} == {"mfcc.parquet", "manifest.json"}

    with monkeypatch.context() as patch:
        patch.setattr(extract_module, "run_pipeline", no_decoding)
        again, hit = extract_features(tracks, CFG, uri("music/cache"))
    assert hit.from_cache and hit.store == report.store
    np.testing.assert_array_equal(again.arrays["mfcc"], features.arrays["mfcc"])

    # Replace one object: its Last-Modified and size change, the other 35 rows come from the old store.
    victim = tracks["path"][0]
    before = fingerprint(victim)
    replacement = next((tiny_collection / "techno").glob("*.flac")).read_bytes()
    with fs.open_output_stream(resolve(victim)[1]) as file:
        file.write(replacement)
    assert fingerprint(victim) != before
    after, changed = extract_features(tracks, CFG, uri("music/cache"))
    assert changed.n_decoded == 1 and changed.store != report.store
    np.testing.assert_array_equal(after.arrays["mfcc"][1:], features.arrays["mfcc"][1:])
    assert not np.allclose(after.arrays["mfcc"][0], features.arrays["mfcc"][0])


def test_tables_and_the_demo_collection_on_s3(s3, capsys) -> None:
    fs, uri = s3
    table = pd.DataFrame({"track_id": ["a", "b", "c"], "f0": [0.0, 1.0, 2.0], "genre": [1, 2, 1], "label": ["x", "y", "x"]})
    pq.write_table(pa.Table.from_pandas(table), "music/tables/t.parquet", filesystem=fs)
    read = read_feature_table(TableSource(kind="table", path=uri("music/tables/t.parquet")))
    assert read.track_ids == ["a", "b", "c"] and read.feature_names == ["f0"] and read.labels == ["x", "y", "x"]

    source = SynthSource(kind="synth", per_genre=2, clip_seconds=1.0)
    tracks = list_tracks(source, uri("music/demo-cache"))
    assert "Generating the demo collection" in capsys.readouterr().out
    assert len(tracks) == 12 and all(p.startswith("s3://") and fingerprint(p) is not None for p in tracks["path"])
    again = list_tracks(source, uri("music/demo-cache"))
    assert "Generating" not in capsys.readouterr().out
    pd.testing.assert_frame_equal(again, tracks)
