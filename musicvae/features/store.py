"""The feature store: one folder of Parquet per (feature config, source listing).

Layout of ``<cache_dir>/features/<key>/``::

    features.parquet   track_id + one float32 column per feature (readable by plain pandas)
    manifest.json      config, source files, counts, skipped files with reasons, versions

The key hashes the feature config and the listing of source files (path, size,
mtime), so the same inputs never get decoded twice and a changed file gives a
new key. A store is written into a temporary folder and renamed into place
only when complete, so a half-written store is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from musicvae.config import AudioFeatureConfig

STORE_VERSION = 1


@dataclass(frozen=True)
class SkippedFile:
    track_id: str
    path: str
    reason: str


@dataclass(frozen=True)
class StoreEntry:
    """A complete feature set on disk."""

    directory: Path
    features: pd.DataFrame  # track_id + feature columns, tracks that decoded
    skipped: list[SkippedFile] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def _file_fingerprint(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def source_listing(tracks: pd.DataFrame) -> list[dict]:
    return [
        {"track_id": tid, "path": path, "size_mtime": _file_fingerprint(path)}
        for tid, path in zip(tracks["track_id"], tracks["path"])
    ]


def store_key(cfg: AudioFeatureConfig, listing: list[dict]) -> str:
    payload = json.dumps({"version": STORE_VERSION, "config": cfg.model_dump(), "files": listing}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def store_dir(cache_dir: Path, key: str) -> Path:
    return cache_dir / "features" / key


def read_store(directory: Path) -> StoreEntry | None:
    """The store at ``directory``, or None if it is absent or incomplete."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    skipped = [SkippedFile(**s) for s in manifest.get("skipped", [])]
    return StoreEntry(directory, pd.read_parquet(directory / "features.parquet"), skipped, manifest)


def write_store(directory: Path, features: pd.DataFrame, skipped: list[SkippedFile], manifest: dict) -> StoreEntry:
    """Write to a sibling temp folder, then rename: readers see all of it or none."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    features.to_parquet(tmp / "features.parquet", index=False)
    manifest = {**manifest, "skipped": [s.__dict__ for s in skipped]}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    if directory.exists():  # a concurrent writer won the race; its store is equivalent
        shutil.rmtree(tmp)
    else:
        tmp.rename(directory)
    return StoreEntry(directory, features, skipped, manifest)
