"""FMA's precomputed features.csv, on a real 2000-track slice (MFCC block, 10 empty rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path

from musicvae.config.sections import FMAFeaturesSource
from musicvae.data.sources import SourceError, read_fma_features, read_fma_features_csv


@pytest.fixture(scope="module")
def slice_dir() -> Path:
    return shared_path("fma_metadata_slice")


def source(slice_dir: Path, **kwargs) -> FMAFeaturesSource:
    return FMAFeaturesSource(kind="fma_features", features_csv=str(slice_dir / "features.csv"), **kwargs)


def test_raw_slice_layout(slice_dir: Path) -> None:
    raw = read_fma_features_csv(slice_dir / "features.csv", ["mfcc"])
    assert raw.shape == (2000, 140)
    assert raw.columns[0] == "mfcc_kurtosis_01" and raw.columns[-1] == "mfcc_std_20"
    assert raw.index.name == "track_id" and pd.api.types.is_integer_dtype(raw.index)
    assert int(raw.isna().any(axis=1).sum()) == 10
    # Same numbers, same order as the plain three-header read.
    reference = pd.read_csv(slice_dir / "features.csv", index_col=0, header=[0, 1, 2])
    np.testing.assert_array_equal(raw.to_numpy(), reference.to_numpy())


def test_raw_statistics_keep_file_order(slice_dir: Path) -> None:
    raw = read_fma_features_csv(slice_dir / "features.csv", ["mfcc"], ["std", "mean"])
    assert raw.shape == (2000, 40)
    assert list(raw.columns[:2]) == ["mfcc_mean_01", "mfcc_mean_02"] and raw.columns[20] == "mfcc_std_01"


def test_labels_csv(slice_dir: Path) -> None:
    table, skipped = read_fma_features(source(slice_dir, labels_csv=str(slice_dir / "labels.csv")))
    assert table.features.shape == (1990, 140) and table.features.dtype == np.float32
    assert np.isfinite(table.features).all()
    assert len(table.track_ids) == len(table.labels) == len(table.text) == 1990
    assert all(isinstance(t, str) for t in table.track_ids)
    assert set(table.labels) == {"Hip-Hop", "Rock"}
    assert sorted(table.text.columns) == ["artist", "title"] and "genre" not in table.text.columns
    assert len(skipped) == 10 and ("2", "missing feature values (140 of 140)") in skipped
    assert not set(t for t, _ in skipped) & set(table.track_ids)
    # Rows stay aligned: track 694's label and text are its own.
    labels = pd.read_csv(slice_dir / "labels.csv").set_index("track_id")
    i = table.track_ids.index("694")
    assert table.labels[i] == labels.loc[694, "genre"] and table.text.loc[i, "title"] == labels.loc[694, "title"]


def test_statistics_genres_and_no_labels(slice_dir: Path) -> None:
    table, _ = read_fma_features(source(slice_dir, labels_csv=str(slice_dir / "labels.csv"), statistics=["mean", "std"]))
    assert table.features.shape == (1990, 40)
    rock, skipped = read_fma_features(source(slice_dir, labels_csv=str(slice_dir / "labels.csv"), genres=["Rock"]))
    assert set(rock.labels) == {"Rock"} and len(rock.track_ids) + len(skipped) == 1000
    bare, skipped = read_fma_features(source(slice_dir))
    assert bare.labels is None and bare.text.shape == (1990, 0) and len(skipped) == 10


def test_errors_name_the_key(slice_dir: Path) -> None:
    with pytest.raises(SourceError, match=r"data\.source\.groups: \['chroma_cens'\] not in features\.csv \(groups: \['mfcc'\]\)"):
        read_fma_features(source(slice_dir, groups=["mfcc", "chroma_cens"]))
    with pytest.raises(SourceError, match=r"data\.source\.genres: \['Jazz'\]"):
        read_fma_features(source(slice_dir, labels_csv=str(slice_dir / "labels.csv"), genres=["Jazz"]))
    with pytest.raises(SourceError, match=r"data\.source\.label_column"):
        read_fma_features(source(slice_dir, labels_csv=str(slice_dir / "labels.csv"), label_column="style"))
    with pytest.raises(SourceError, match=r"data\.source\.features_csv: .* is not FMA's features\.csv"):
        read_fma_features_csv(slice_dir / "labels.csv", ["mfcc"])


def write_tracks_csv(path: Path, rows: dict[int, tuple[str, str | None]]) -> None:
    """An FMA-layout tracks.csv (two header rows + the index-name row) whose genre columns are easy to spot."""
    columns = pd.MultiIndex.from_tuples(
        [
            ("set", "subset"),
            ("track", "genre_top"),
            ("track", "title"),
            ("track", "genres"),
            ("track", "genres_all"),
            ("track", "tags"),
            ("artist", "name"),
            ("album", "title"),
        ]
    )
    data = {
        tid: (subset, genre, f"Song {tid}", f"GENRES[{genre}]", f"GENRES_ALL[{genre}]", f"TAGS[{genre}]", f"Artist {tid}", f"Album {tid}")
        for tid, (subset, genre) in rows.items()
    }
    frame = pd.DataFrame.from_dict(data, orient="index", columns=columns)
    frame.index.name = "track_id"
    frame.to_csv(path)


def test_tracks_csv_labels_subset_and_no_leak(slice_dir: Path, tmp_path: Path) -> None:
    labels = pd.read_csv(slice_dir / "labels.csv")
    complete = labels["track_id"].iloc[10:16].tolist()  # rows 0-9 of the slice are the empty ones
    rows = {tid: ("small", genre) for tid, genre in zip(labels["track_id"].iloc[:16], labels["genre"].iloc[:16])}
    rows[complete[0]] = ("medium", rows[complete[0]][1])
    rows[complete[1]] = ("small", None)  # FMA has no genre_top for it
    tracks_csv = tmp_path / "tracks.csv"
    write_tracks_csv(tracks_csv, rows)

    table, skipped = read_fma_features(source(slice_dir, tracks_csv=str(tracks_csv)))
    reasons = dict(skipped)
    assert table.track_ids == [str(t) for t in complete if t != complete[1]]  # the medium track is in (no subset)
    assert table.labels == [rows[int(t)][1] for t in table.track_ids]
    assert list(table.text.columns) == ["title", "artist", "album"]
    assert table.text.loc[0].tolist() == [f"Song {complete[0]}", f"Artist {complete[0]}", f"Album {complete[0]}"]
    assert reasons[str(complete[1])] == "no label in tracks.csv"
    assert reasons["2"].startswith("missing feature values")
    assert len(skipped) == 2000 - len(table.track_ids)  # every other features.csv row has no label here
    leaked = {"Hip-Hop", "Rock", "GENRES", "TAGS"}
    assert not [v for v in table.text.to_numpy().ravel() if any(word in str(v) for word in leaked)]

    small, skipped = read_fma_features(source(slice_dir, tracks_csv=str(tracks_csv), subset="small"))
    assert str(complete[0]) not in small.track_ids and str(complete[0]) not in dict(skipped)
    assert small.track_ids == [str(t) for t in complete[2:]]
    assert len(skipped) == 11  # the 10 empty rows (all small) and the track without genre_top
    medium, _ = read_fma_features(source(slice_dir, tracks_csv=str(tracks_csv), subset="medium"))
    assert medium.track_ids == table.track_ids


def test_fma_features_source_feeds_a_feature_set() -> None:
    from musicvae.config.sections import DataConfig
    from musicvae.data.dataset import load_feature_set

    folder = shared_path("fma_metadata_slice")
    source = FMAFeaturesSource(kind="fma_features", features_csv=str(folder / "features.csv"), labels_csv=str(folder / "labels.csv"))
    data = load_feature_set(DataConfig(source=source))
    assert data.features.shape == (1990, 140) and abs(float(data.features.mean())) < 1e-5
    assert data.label_names == ["Hip-Hop", "Rock"] and len(data.skipped) == 10
    assert list(data.text.columns) == ["track_id", "artist", "title"]
    assert "10 rows skipped" in data.summary
