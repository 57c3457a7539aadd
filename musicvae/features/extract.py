"""Audio to features, in parallel and streaming, with Ray Data.

The pipeline is ``from_items(tracks) -> map_batches(decode + MFCC) -> Parquet``.
Ray Data streams blocks through the workers, so memory stays bounded however
many files there are, and every core decodes. A file that fails is not an
exception in the pipeline: its row carries the reason and is reported as
skipped, so one corrupt MP3 never costs the run.
"""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from musicvae.config import AudioFeatureConfig
from musicvae.features.audio import AudioError, extract_file, mfcc_feature_names
from musicvae.features.store import SkippedFile, StoreEntry, read_store, source_listing, store_dir, store_key, write_store


class ExtractionError(RuntimeError):
    """No usable track at all: there is nothing to cluster."""


@dataclass(frozen=True)
class ExtractionReport:
    n_tracks: int
    n_extracted: int
    skipped: list[SkippedFile]
    seconds: float
    from_cache: bool
    store: str

    def summary(self) -> str:
        origin = "from cache" if self.from_cache else f"in {self.seconds:.1f} s ({self.n_tracks / max(self.seconds, 1e-9):.1f} tracks/s)"
        lines = [f"Features: {self.n_extracted}/{self.n_tracks} tracks {origin}; {len(self.skipped)} skipped; store {self.store}"]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more (see manifest.json)")
        return "\n".join(lines)


def extract_batch(batch: pd.DataFrame, cfg: AudioFeatureConfig) -> pd.DataFrame:
    """One Ray Data batch: features per row, NaN plus a reason where a file fails."""
    names = mfcc_feature_names(cfg)
    values = np.full((len(batch), len(names)), np.nan, dtype=np.float32)
    errors = []
    for i, path in enumerate(batch["path"]):
        try:
            values[i] = extract_file(path, cfg)
            errors.append("")
        except AudioError as exc:
            errors.append(str(exc))
        except Exception as exc:  # a bug in feature code must not kill the whole run either
            errors.append(f"feature extraction failed: {type(exc).__name__}: {exc}")
    out = pd.DataFrame(values, columns=names)
    out.insert(0, "track_id", batch["track_id"].to_numpy())
    out["error"] = errors
    return out


def run_pipeline(tracks: pd.DataFrame, cfg: AudioFeatureConfig, batch_size: int = 8) -> pd.DataFrame:
    """Ray Data over the track table; returns track_id, features and error per track."""
    import ray

    n_blocks = max(1, min(len(tracks), int(ray.available_resources().get("CPU", 1)) * 4, len(tracks) // batch_size + 1))
    ds = ray.data.from_items(tracks[["track_id", "path"]].to_dict("records"), override_num_blocks=n_blocks)
    ds = ds.map_batches(extract_batch, fn_kwargs={"cfg": cfg}, batch_size=batch_size, batch_format="pandas", num_cpus=1)
    result = ds.to_pandas()
    # Ray Data does not keep row order; the store follows the source listing.
    return result.set_index("track_id").loc[tracks["track_id"]].reset_index()


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("musicvae", "librosa", "soundfile", "numpy", "ray"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def extract_features(tracks: pd.DataFrame, cfg: AudioFeatureConfig, cache_dir: Path) -> tuple[StoreEntry, ExtractionReport]:
    """Features for every track, from the store when the inputs are unchanged."""
    listing = source_listing(tracks)
    directory = store_dir(cache_dir, store_key(cfg, listing))
    cached = read_store(directory)
    if cached is not None:
        report = ExtractionReport(len(tracks), len(cached.features), cached.skipped, 0.0, True, str(directory))
        return cached, report

    start = time.perf_counter()
    result = run_pipeline(tracks, cfg)
    seconds = time.perf_counter() - start
    failed = result["error"] != ""
    paths = dict(zip(tracks["track_id"], tracks["path"]))
    skipped = [SkippedFile(tid, paths[tid], reason) for tid, reason in zip(result.loc[failed, "track_id"], result.loc[failed, "error"])]
    if failed.all():
        reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in skipped[:5])
        raise ExtractionError(f"none of the {len(tracks)} files could be read ({reasons})")
    features = result.loc[~failed].drop(columns="error").reset_index(drop=True)
    manifest = {
        "config": cfg.model_dump(),
        "files": listing,
        "counts": {"tracks": len(tracks), "extracted": len(features), "skipped": len(skipped)},
        "seconds": round(seconds, 3),
        "versions": _versions(),
    }
    entry = write_store(directory, features, skipped, manifest)
    return entry, ExtractionReport(len(tracks), len(features), skipped, seconds, False, str(directory))
