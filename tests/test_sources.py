from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicvae.config.sections import FMASource, FolderSource, ManifestSource, TableSource
from musicvae.data.sources import SourceError, fma_track_path, fma_tracks, folder_tracks, manifest_tracks, read_feature_table


def write_fma_tracks_csv(metadata_dir: Path, labels: pd.DataFrame, extra: dict[int, tuple[str, str]] | None = None) -> None:
    """A tracks.csv in FMA's official layout (two header rows + the index-name row)."""
    rows = {
        int(r.track_id): ("small", "training", r.genre, r.title, f"[{r.genre}]", f"['{r.genre.lower()}']", r.artist, "Some Album") for r in labels.itertuples()
    }
    for tid, (subset, genre) in (extra or {}).items():
        rows[tid] = (subset, "training", genre, f"t{tid}", "[]", "[]", f"a{tid}", "alb")
    columns = pd.MultiIndex.from_tuples(
        [
            ("set", "subset"),
            ("set", "split"),
            ("track", "genre_top"),
            ("track", "title"),
            ("track", "genres"),
            ("track", "tags"),
            ("artist", "name"),
            ("album", "title"),
        ]
    )
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    frame.index.name = "track_id"
    metadata_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(metadata_dir / "tracks.csv")


def test_fma_path_layout() -> None:
    assert fma_track_path(Path("/a"), 2) == Path("/a/000/000002.mp3")
    assert fma_track_path(Path("/a"), 155066) == Path("/a/155/155066.mp3")


def test_fma_layout_subset_genres_and_text(tmp_path: Path, fma_clips: Path) -> None:
    labels = pd.read_csv(fma_clips / "labels.csv")
    write_fma_tracks_csv(tmp_path / "fma_metadata", labels, extra={999999: ("large", "Rock")})
    source = FMASource(kind="fma", metadata_dir=str(tmp_path / "fma_metadata"), audio_dir=str(fma_clips / "fma_small"))
    tracks = fma_tracks(source)
    assert len(tracks) == len(labels)  # the 'large' track is outside fma_small
    assert all(Path(p).exists() for p in tracks["path"])
    assert set(tracks["label"]) == {"Hip-Hop", "Rock"}
    assert list(tracks.columns) == ["track_id", "path", "label", "title", "artist", "album"]
    # genre_top, genres and tags name the genre: none of them may reach the text.
    text = " ".join(tracks[["title", "artist", "album"]].astype(str).agg(" ".join, axis=1)).lower()
    assert "[hip-hop]" not in text and "['rock']" not in text

    large = fma_tracks(source.model_copy(update={"subset": "large"}))
    assert "999999" in set(large["track_id"])


def test_fma_per_genre_sampling_is_seeded(tmp_path: Path, fma_clips: Path) -> None:
    labels = pd.read_csv(fma_clips / "labels.csv")
    write_fma_tracks_csv(tmp_path / "m", labels)
    base = dict(kind="fma", metadata_dir=str(tmp_path / "m"), audio_dir=str(fma_clips / "fma_small"), per_genre=2)
    a = fma_tracks(FMASource(**base, seed=0))
    b = fma_tracks(FMASource(**base, seed=0))
    assert a["label"].value_counts().to_dict() == {"Hip-Hop": 2, "Rock": 2}
    assert a["track_id"].tolist() == b["track_id"].tolist()
    seeds = {tuple(fma_tracks(FMASource(**base, seed=s))["track_id"]) for s in range(6)}
    assert len(seeds) > 1
    only_rock = fma_tracks(FMASource(**{**base, "per_genre": None}, genres=["Rock"]))
    assert set(only_rock["label"]) == {"Rock"} and len(only_rock) == 7
    with pytest.raises(SourceError, match="Jazz"):
        fma_tracks(FMASource(**base, genres=["Jazz"]))


def test_fma_missing_tracks_csv_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="tracks.csv"):
        fma_tracks(FMASource(kind="fma", metadata_dir=str(tmp_path), audio_dir=str(tmp_path)))


def test_folder_source_takes_labels_from_folders(tiny_collection: Path) -> None:
    tracks = folder_tracks(FolderSource(kind="folder", root=str(tiny_collection)))
    assert len(tracks) == 36 and tracks["label"].nunique() == 6
    assert all(Path(p).is_absolute() for p in tracks["path"])


def test_manifest_source_resolves_relative_paths(tiny_collection: Path) -> None:
    tracks = manifest_tracks(ManifestSource(kind="manifest", path=str(tiny_collection / "metadata.csv")))
    assert list(tracks.columns) == ["track_id", "path", "label", "title", "artist"]
    assert all(Path(p).exists() for p in tracks["path"])


def test_manifest_tells_files_of_one_name_in_two_folders_apart(tmp_path: Path) -> None:
    """emotify's manifest lists pop/51.ogg and rock/51.ogg: the stems collide, so the ids are the paths, as a folder source's are."""
    (tmp_path / "labels.csv").write_text("path,genre\npop/51.ogg,pop\nrock/51.ogg,rock\nrock/52.ogg,rock\n")
    tracks = manifest_tracks(ManifestSource(kind="manifest", path=str(tmp_path / "labels.csv"), label_column="genre"))
    assert tracks["track_id"].tolist() == ["pop/51", "rock/51", "rock/52"]
    (tmp_path / "unique.csv").write_text("path,genre\npop/51.ogg,pop\nrock/52.ogg,rock\n")
    unique = manifest_tracks(ManifestSource(kind="manifest", path=str(tmp_path / "unique.csv"), label_column="genre"))
    assert unique["track_id"].tolist() == ["51", "52"]  # unchanged where the stems are unique


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no .wav"):
        folder_tracks(FolderSource(kind="folder", root=str(tmp_path)))


def test_fma5_feature_table_loads(fma5_csv: Path) -> None:
    table = read_feature_table(TableSource(kind="table", path=str(fma5_csv), label_column="genre"))
    assert table.features.shape == (2996, 40)
    assert table.feature_names[0] == "mfcc_mean_00" and table.feature_names[-1] == "mfcc_std_19"
    assert sorted(set(table.labels)) == ["Experimental", "Folk", "Hip-Hop", "Pop", "Rock"]
    assert list(table.text.columns) == ["artist", "title"]  # text, never features


def test_table_never_uses_genre_like_columns_as_features(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"track_id": [1, 2, 3], "genre_id": [4, 5, 4], "f1": [0.1, 0.2, 0.3], "f2": [1.0, 2.0, 3.0]}).to_parquet(path)
    table = read_feature_table(TableSource(kind="table", path=str(path)))
    assert table.feature_names == ["f1", "f2"] and table.labels is None
    with pytest.raises(SourceError, match="not features"):
        read_feature_table(TableSource(kind="table", path=str(path), feature_columns=["f1", "genre_id"]))
    with pytest.raises(SourceError, match="label_column"):
        read_feature_table(TableSource(kind="table", path=str(path), label_column="style"))


def test_table_with_missing_values_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"track_id": [1, 2], "f1": [0.1, np.nan]}).to_csv(path, index=False)
    with pytest.raises(SourceError, match="1 rows"):
        read_feature_table(TableSource(kind="table", path=str(path)))
