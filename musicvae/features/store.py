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

A store is written into a temporary folder and renamed into place only when
complete, so a half-written store is never read as complete. Everything is
plain Parquet: ``pd.read_parquet`` gives each spectrogram as a flat array,
``pyarrow`` gives the (n, 20, 128) tensor with ``to_numpy_ndarray()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from musicvae.config import AudioFeatureConfig

STORE_VERSION = 2


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


def fingerprint(path: str) -> list[int] | None:
    """(size, mtime in ns) of a file, or None if it cannot be stat'ed."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def source_listing(tracks: pd.DataFrame) -> list[dict]:
    return [{"track_id": tid, "path": path, "fingerprint": fingerprint(path)} for tid, path in zip(tracks["track_id"], tracks["path"])]


def content_hash(payload: object) -> str:
    """A short, stable key for JSON-able content (configs, listings, texts)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def store_dir(cache_dir: Path, cfg: AudioFeatureConfig, listing: list[dict]) -> Path:
    return cache_dir / "features" / content_hash({"version": STORE_VERSION, "config": cfg.model_dump()}) / content_hash(listing)


def _write_kind(path: Path, track_ids: list[str], values: np.ndarray, names: list[str] | None) -> None:
    if values.ndim == 2 and names:
        frame = pd.DataFrame(values, columns=names)
        frame.insert(0, "track_id", track_ids)
        frame.to_parquet(path, index=False)
    else:
        tensor = pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(values))
        pq.write_table(pa.table({"track_id": track_ids, "value": tensor}), path)


def _read_kind(path: Path) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(path)
    track_ids = table.column("track_id").to_pylist()
    if "value" in table.column_names and isinstance(table.schema.field("value").type, pa.FixedShapeTensorType):
        return track_ids, table.column("value").combine_chunks().to_numpy_ndarray()
    return track_ids, table.drop_columns(["track_id"]).to_pandas().to_numpy(dtype=np.float32)


def read_store(directory: Path) -> tuple[ExtractedFeatures, dict] | None:
    """The complete store at ``directory`` and its manifest, or None."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    arrays, track_ids = {}, []
    for kind in manifest["kinds"]:
        track_ids, arrays[kind] = _read_kind(directory / f"{kind}.parquet")
    skipped = [SkippedFile(**s) for s in manifest["skipped"]]
    return ExtractedFeatures(track_ids, arrays, skipped), manifest


def previous_stores(directory: Path) -> list[Path]:
    """Complete stores of the same config, newest first (candidates to reuse rows from)."""
    siblings = [p for p in directory.parent.glob("*") if p != directory and (p / "manifest.json").exists()]
    return sorted(siblings, key=lambda p: (p / "manifest.json").stat().st_mtime_ns, reverse=True)


def write_store(directory: Path, features: ExtractedFeatures, names: dict[str, list[str]], manifest: dict) -> None:
    """Write to a sibling temp folder, then rename: readers see all of it or none."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".tmp-{directory.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    for kind, values in features.arrays.items():
        _write_kind(tmp / f"{kind}.parquet", features.track_ids, values, names.get(kind))
    manifest = {**manifest, "kinds": list(features.arrays), "skipped": [s.__dict__ for s in features.skipped]}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    if (directory / "manifest.json").exists():  # a concurrent writer won the race; its store is equivalent
        shutil.rmtree(tmp)
        return
    if directory.exists():  # an incomplete store (no manifest) is never trusted: replace it
        shutil.rmtree(directory)
    tmp.rename(directory)
