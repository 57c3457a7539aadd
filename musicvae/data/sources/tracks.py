"""Where tracks come from: a folder, a CSV manifest, the FMA layout, or the demo.

Every audio source becomes the same table, one row per track:
``track_id``, ``path`` (absolute), ``label`` (None when unknown) and text
columns (title, artist, ...) for the text modality. Labels are carried for
evaluation only; no text column may hold them.

Every path in a source may be a pyarrow filesystem URI (``s3://bucket/music``,
``file:///data/music``) as well as a plain path: a track's ``path`` is then a
URI too, which any Ray worker opens (see :mod:`musicvae.data.locations`).

A features-only table (precomputed features) is the other kind of source and
is read by :func:`read_feature_table` (FMA's own ``features.csv`` by
:mod:`musicvae.data.sources.fma_features`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from musicvae.config.sections import (
    GENRE_LIKE_COLUMNS,
    FMASource,
    FolderSource,
    ManifestSource,
    SynthSource,
    TableSource,
)
from musicvae.data.locations import absolute, is_uri, join, open_input, parent, resolve

# The files a folder source takes as tracks: what soundfile decodes without ffmpeg.
AUDIO_EXTENSIONS = (".wav", ".mp3", ".ogg", ".flac")

TEXT_COLUMNS = ("title", "artist", "album")


class SourceError(ValueError):
    """A source that cannot be read; the message says which file and why."""


def _tracks_frame(rows: pd.DataFrame, text_columns: list[str]) -> pd.DataFrame:
    columns = ["track_id", "path", "label", *text_columns]
    frame = rows.reindex(columns=columns)
    frame["track_id"] = frame["track_id"].astype(str)
    frame["label"] = frame["label"].astype(object).where(frame["label"].notna(), None)
    if frame["track_id"].duplicated().any():
        dupes = frame.loc[frame["track_id"].duplicated(), "track_id"].head(5).tolist()
        raise SourceError(f"duplicate track ids, e.g. {dupes}")
    return frame.reset_index(drop=True)


def read_csv(location: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` of a plain path or a URI; FileNotFoundError if it is not there."""
    with open_input(location) as file:
        return pd.read_csv(file, **kwargs)


def _located(key: str, location: str, kind: pafs.FileType) -> tuple[str, pafs.FileSystem, str]:
    """``data.source.<key>`` as an absolute location, its filesystem and path; a clear error unless it is a ``kind`` (file or folder)."""
    location = absolute(location)
    fs, path = resolve(location)
    if fs.get_file_info(path).type != kind:
        raise SourceError(f"data.source.{key}: {location} " + ("is not a directory" if kind == pafs.FileType.Directory else "does not exist"))
    return location, fs, path


def folder_tracks(source: FolderSource) -> pd.DataFrame:
    root, fs, root_path = _located("root", source.root, pafs.FileType.Directory)
    rows = []
    for info in sorted(fs.get_file_info(pafs.FileSelector(root_path, recursive=True)), key=lambda f: PurePosixPath(f.path)):
        relative = PurePosixPath(info.path).relative_to(root_path)
        if relative.suffix.lower() not in AUDIO_EXTENSIONS or info.type != pafs.FileType.File:
            continue
        label = relative.parts[0] if len(relative.parts) > 1 else None
        rows.append({"track_id": relative.with_suffix("").as_posix(), "path": join(root, relative.as_posix()), "label": label})
    if not rows:
        raise SourceError(f"data.source.root: no {'/'.join(AUDIO_EXTENSIONS)} files under {root}")
    return _tracks_frame(pd.DataFrame(rows), [])


def manifest_tracks(source: ManifestSource) -> pd.DataFrame:
    manifest = absolute(source.path)
    try:
        table = read_csv(manifest)
    except FileNotFoundError:
        raise SourceError(f"data.source.path: {manifest} does not exist") from None
    if source.path_column not in table.columns:
        raise SourceError(f"{manifest}: no '{source.path_column}' column (columns: {list(table.columns)})")
    paths = table[source.path_column].astype(str)
    folder = parent(manifest)
    table["path"] = [p if is_uri(p) or Path(p).is_absolute() else join(folder, p) for p in paths]
    table["label"] = table[source.label_column] if source.label_column in table.columns else None
    if source.id_column:
        table["track_id"] = table[source.id_column]
    elif "track_id" not in table.columns:
        stems = [Path(p).stem for p in paths]
        # Files of one name in several folders (pop/51.ogg, rock/51.ogg) are told apart by their paths, as a folder source does.
        table["track_id"] = stems if len(set(stems)) == len(stems) else [PurePosixPath(p).with_suffix("").as_posix() for p in paths]
    text_columns = [c for c in source.text_columns if c in table.columns and c not in GENRE_LIKE_COLUMNS]
    return _tracks_frame(table, text_columns)


def fma_track_path(audio_dir: Path, track_id: int) -> Path:
    """FMA stores track 2 as ``000/000002.mp3``: the folder is the first three digits."""
    name = f"{track_id:06d}"
    return audio_dir / name[:3] / f"{name}.mp3"


FMA_SUBSETS = {"small": ("small",), "medium": ("small", "medium"), "large": ("small", "medium", "large")}


def fma_tracks(source: FMASource) -> pd.DataFrame:
    """Tracks of an FMA subset, with genre_top as label, sampled per genre with a seed.

    Only title, artist name and album title become text: genre_top, genres,
    genres_all and tags all name the genre and would leak the label.
    """
    tracks_csv = join(source.metadata_dir, "tracks.csv")
    try:
        tracks = read_csv(tracks_csv, index_col=0, header=[0, 1], low_memory=False)
    except FileNotFoundError:
        raise SourceError(f"data.source.metadata_dir: {tracks_csv} does not exist") from None
    needed = [("set", "subset"), ("track", "genre_top")]
    missing = [c for c in needed if c not in tracks.columns]
    if missing:
        raise SourceError(f"{tracks_csv}: missing columns {missing}; is this FMA's tracks.csv (two header rows)?")

    tracks = tracks[tracks[("set", "subset")].isin(FMA_SUBSETS[source.subset])]
    tracks = tracks[tracks[("track", "genre_top")].notna()]
    if source.genres:
        unknown = sorted(set(source.genres) - set(tracks[("track", "genre_top")]))
        if unknown:
            raise SourceError(f"data.source.genres: {unknown} not found in the {source.subset} subset")
        tracks = tracks[tracks[("track", "genre_top")].isin(source.genres)]
    if source.per_genre:
        rng = np.random.default_rng(source.seed)
        picked = []
        for _, group in tracks.groupby(("track", "genre_top"), sort=True):
            take = min(source.per_genre, len(group))
            picked.extend(sorted(rng.choice(group.index.to_numpy(), size=take, replace=False)))
        tracks = tracks.loc[sorted(picked)]

    audio_dir = absolute(source.audio_dir)
    rows = pd.DataFrame(
        {
            "track_id": tracks.index.astype(str),
            "path": [join(audio_dir, fma_track_path(Path(), int(tid)).as_posix()) for tid in tracks.index],
            "label": tracks[("track", "genre_top")].to_numpy(),
            "title": tracks.get(("track", "title")),
            "artist": tracks.get(("artist", "name")),
            "album": tracks.get(("album", "title")),
        }
    )
    return _tracks_frame(rows, list(TEXT_COLUMNS))


def synth_tracks(source: SynthSource, cache_dir: str) -> pd.DataFrame:
    """The demo collection, generated once into the cache and reused.

    With a URI it is generated in a local temp folder and uploaded,
    ``metadata.csv`` last: that file is what marks the collection complete.
    """
    from musicvae.data.synth import synthesize_collection

    out = absolute(source.out) if source.out else join(absolute(cache_dir), "demo_data", f"seed{source.seed}_n{source.per_genre}")
    fs, out_path = resolve(out)
    if fs.get_file_info(f"{out_path}/metadata.csv").type != pafs.FileType.File:
        print(f"Generating the demo collection in {out} ...", flush=True)
        options = dict(per_genre=source.per_genre, seed=source.seed, clip_seconds=source.clip_seconds)
        if not is_uri(out):
            synthesize_collection(Path(out), **options)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                synthesize_collection(Path(tmp, "demo"), **options)
                Path(tmp, "demo", "metadata.csv").rename(Path(tmp, "metadata.csv"))
                pafs.copy_files(str(Path(tmp, "demo")), out_path, destination_filesystem=fs)
                pafs.copy_files(str(Path(tmp, "metadata.csv")), f"{out_path}/metadata.csv", destination_filesystem=fs)
    return manifest_tracks(ManifestSource(kind="manifest", path=join(out, "metadata.csv"), text_columns=["title", "artist"]))


def list_tracks(source: FolderSource | ManifestSource | FMASource | SynthSource, cache_dir: str) -> pd.DataFrame:
    if isinstance(source, FolderSource):
        return folder_tracks(source)
    if isinstance(source, ManifestSource):
        return manifest_tracks(source)
    if isinstance(source, FMASource):
        return fma_tracks(source)
    if isinstance(source, SynthSource):
        return synth_tracks(source, cache_dir)
    raise TypeError(f"not an audio source: {type(source).__name__}")


# ------------------------------------------------------------- feature tables


@dataclass(frozen=True)
class FeatureTable:
    """Precomputed features: one row per track."""

    track_ids: list[str]
    features: np.ndarray  # (n_tracks, n_features) float32
    feature_names: list[str]
    labels: list[str] | None
    text: pd.DataFrame  # non-numeric metadata (artist, title, ...) for the text modality


def read_feature_table(source: TableSource) -> FeatureTable:
    """Read a CSV/Parquet table; numeric columns are features unless named as id or label.

    Genre-like columns (``genre``, ``genre_id``, ...) are never used as features
    even when numeric, so a forgotten ``label_column`` cannot leak the answer.
    """
    path, fs, fs_path = _located("path", source.path, pafs.FileType.File)
    if PurePosixPath(fs_path).suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(fs_path, filesystem=fs)
    else:
        table = read_csv(path)
    if source.id_column not in table.columns:
        raise SourceError(f"{path}: no id column '{source.id_column}' (columns start {list(table.columns)[:6]})")
    labels = None
    if source.label_column:
        if source.label_column not in table.columns:
            if source.label_column != "label":  # the default may simply be absent
                raise SourceError(f"data.source.label_column: '{source.label_column}' is not a column of {path}")
        else:
            labels = table[source.label_column].astype(str).tolist()

    excluded = {source.id_column, source.label_column} | GENRE_LIKE_COLUMNS
    if source.feature_columns:
        missing = [c for c in source.feature_columns if c not in table.columns]
        if missing:
            raise SourceError(f"data.source.feature_columns: {missing} not in {path}")
        leaking = [c for c in source.feature_columns if c in excluded]
        if leaking:
            raise SourceError(f"data.source.feature_columns: {leaking} are id/label columns, not features")
        feature_names = list(source.feature_columns)
    else:
        feature_names = [c for c in table.columns if c not in excluded and pd.api.types.is_numeric_dtype(table[c])]
    if not feature_names:
        raise SourceError(f"{path}: no numeric feature columns")
    text_columns = [c for c in table.columns if c not in excluded and c not in feature_names]
    features = table[feature_names].to_numpy(dtype=np.float32)
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=1).sum())
        raise SourceError(f"{path}: {bad} rows have missing or non-finite features")
    return FeatureTable(
        track_ids=table[source.id_column].astype(str).tolist(),
        features=features,
        feature_names=feature_names,
        labels=labels,
        text=table[text_columns].reset_index(drop=True),
    )
