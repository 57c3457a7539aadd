"""The feature store: one folder of Parquet per feature set (config + source files).

Layout::

    <cache_dir>/features/<config key>/<listing key>/
        mfcc.parquet               track_id + one float32 column per feature
        mfcc_spectrogram.parquet   track_id + a tensor column "value" (Arrow fixed_shape_tensor)
        manifest.json              config, source files, counts, skipped files with reasons, versions

The config key hashes the feature config; the listing key hashes the source
files (path, size, mtime). Unchanged inputs are never decoded twice, and when
some files change, the newest store of the same config lends every row whose
file is unchanged, so only the changed files are decoded again.

A store is complete exactly when its manifest exists: the manifest is written
last, and every file is written whole before it appears (see :func:`write_store`),
so a half-written store is never read as complete. Everything is plain Parquet:
``pd.read_parquet`` gives each spectrogram as a flat array, ``pyarrow`` gives
the (n, 20, 128) tensor with ``to_numpy_ndarray()``.

The store may live at a plain path or a filesystem URI (see :mod:`musicvae.data.locations`).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from musicvae.config.sections import AudioFeatureConfig
from musicvae.data.locations import fingerprint, join, parent, resolve

STORE_VERSION = 2


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


@dataclass(frozen=True)
class SkippedFile:
    track_id: str
    path: str
    reason: str


@dataclass(frozen=True)
class ExtractedFeatures:
    """Features of the tracks that decoded, row-aligned across kinds."""

    track_ids: list[str]
    arrays: dict[str, np.ndarray]  # kind -> (n_tracks, *shape) float32
    skipped: list[SkippedFile] = field(default_factory=list)


def source_listing(tracks: pd.DataFrame) -> list[dict]:
    """Every track's path and fingerprint: what the listing key hashes.

    Sixteen stats at a time: on an object store each is a request, and one
    after the other 10,000 files would cost minutes on every run, cache hit or not.
    """
    with ThreadPoolExecutor(16) as pool:
        prints = list(pool.map(fingerprint, tracks["path"]))
    return [{"track_id": tid, "path": path, "fingerprint": fp} for tid, path, fp in zip(tracks["track_id"], tracks["path"], prints)]


def content_hash(payload: object) -> str:
    """A short, stable key for JSON-able content (configs, listings, texts)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def store_dir(cache_dir: str | Path, cfg: AudioFeatureConfig, listing: list[dict], checkpoints: dict[str, str] | None = None) -> str:
    """The store of these features of these files; ``checkpoints`` (musicnn model -> its checkpoint's hash) where musicnn is extracted."""
    key = {"version": STORE_VERSION, "config": cfg.identity(), **({"checkpoints": checkpoints} if checkpoints else {})}
    return join(cache_dir, "features", content_hash(key), content_hash(listing))


def _kind_table(track_ids: list[str], values: np.ndarray, names: list[str] | None) -> pa.Table:
    if values.ndim == 2 and names:
        frame = pd.DataFrame(values, columns=names)
        frame.insert(0, "track_id", track_ids)
        return pa.Table.from_pandas(frame, preserve_index=False)
    tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))
    return pa.table({"track_id": track_ids, "value": tensor})


def _read_kind(fs: pafs.FileSystem, path: str) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(path, filesystem=fs)
    track_ids = table.column("track_id").to_pylist()
    if "value" in table.column_names and isinstance(table.schema.field("value").type, pa.FixedShapeTensorType):
        return track_ids, table.column("value").combine_chunks().to_numpy_ndarray()
    return track_ids, table.drop_columns(["track_id"]).to_pandas().to_numpy(dtype=np.float32)


def read_store(directory: str | Path) -> tuple[ExtractedFeatures, dict] | None:
    """The complete store at ``directory`` and its manifest, or None."""
    fs, root = resolve(directory)
    if not _exists(fs, f"{root}/manifest.json"):
        return None
    with fs.open_input_stream(f"{root}/manifest.json") as file:
        manifest = json.loads(file.read())
    arrays, track_ids = {}, []
    for kind in manifest["kinds"]:
        track_ids, arrays[kind] = _read_kind(fs, f"{root}/{kind}.parquet")
    skipped = [SkippedFile(**s) for s in manifest["skipped"]]
    return ExtractedFeatures(track_ids, arrays, skipped), manifest


def previous_stores(directory: str | Path) -> list[str]:
    """Complete stores of the same config, newest first (candidates to reuse rows from)."""
    fs, root = resolve(directory)
    folders = fs.get_file_info(pafs.FileSelector(posixpath.dirname(root), allow_not_found=True))
    names = [f.base_name for f in folders if f.type == pafs.FileType.Directory and f.path != root]
    manifests = fs.get_file_info([f"{posixpath.dirname(root)}/{name}/manifest.json" for name in names])
    complete = sorted((m.mtime_ns or 0, name) for name, m in zip(names, manifests) if m.type == pafs.FileType.File)
    return [join(parent(directory), name) for _, name in reversed(complete)]


# Object stores show an object only once its upload completes, and have no
# cheap rename (a move is a copy); everything else is renamed into place.
OBJECT_STORES = frozenset({"s3", "gcs", "abfs"})


def _write_whole(fs: pafs.FileSystem, path: str, write: Callable[[str], None]) -> None:
    """Write one file so that no reader ever sees part of it."""
    if fs.type_name in OBJECT_STORES:
        write(path)
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    write(tmp)
    fs.move(tmp, path)  # a rename: atomic on a local disk, NFS and HDFS


def write_store(directory: str | Path, features: ExtractedFeatures, names: dict[str, list[str]], manifest: dict) -> None:
    """Each file whole, the manifest last: readers see all of the store or none of it.

    Per file rather than a folder renamed into place, because object stores
    cannot rename folders. Two processes writing the same store write the
    same content, so whichever file lands last is fine.
    """
    fs, root = resolve(directory)
    if _exists(fs, f"{root}/manifest.json"):  # a concurrent writer got there first; its store is equivalent
        return
    fs.create_dir(root, recursive=True)
    for kind, values in features.arrays.items():
        table = _kind_table(features.track_ids, values, names.get(kind))
        _write_whole(fs, f"{root}/{kind}.parquet", lambda path: pq.write_table(table, path, filesystem=fs))
    manifest = {**manifest, "kinds": list(features.arrays), "skipped": [s.__dict__ for s in features.skipped]}
    text = json.dumps(manifest, indent=2, default=str).encode()

    def write_manifest(path: str) -> None:
        with fs.open_output_stream(path) as file:
            file.write(text)

    _write_whole(fs, f"{root}/manifest.json", write_manifest)
