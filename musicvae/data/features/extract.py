"""Audio to features, in parallel and streaming, with Ray Data.

The pipeline is ``from_items(tracks) -> map_batches(decode + features)``,
streamed back block by block into the feature store. Ray Data keeps every
core decoding and memory bounded however many files there are. A file that
fails is not an exception in the pipeline: its row carries the reason and is
reported as skipped, so one corrupt MP3 never costs the run.
"""

from __future__ import annotations

import importlib.metadata
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from musicvae import console
from musicvae.config.sections import AudioFeatureConfig, expand_path
from musicvae.data.features.audio import PATCHES, AudioError, extract_file, feature_names, feature_shapes, musicnn_features
from musicvae.data.features.store import (
    ExtractedFeatures,
    SkippedFile,
    previous_stores,
    read_store,
    source_listing,
    store_dir,
    write_store,
)
from musicvae.data.locations import absolute

if TYPE_CHECKING:
    from musicvae.data.features.musicnn import Weights


class ExtractionError(RuntimeError):
    """No usable track at all: there is nothing to cluster."""


@dataclass(frozen=True)
class ExtractionReport:
    n_tracks: int
    n_extracted: int
    n_decoded: int  # files decoded by this run (0 on a cache hit)
    skipped: list[SkippedFile]
    seconds: float
    from_cache: bool
    store: str
    checkpoints: dict[str, str] = field(default_factory=dict)  # musicnn model -> its checkpoint's sha256, where musicnn was extracted

    def summary(self) -> str:
        if self.from_cache:
            origin = "from cache"
        else:
            rate = self.n_decoded / max(self.seconds, 1e-9)
            origin = f"({self.n_decoded} decoded in {self.seconds:.1f} s, {rate:.1f} tracks/s; {self.n_tracks - self.n_decoded} reused)"
        lines = [f"Features: {self.n_extracted}/{self.n_tracks} tracks {origin}; {len(self.skipped)} skipped; store {self.store}"]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more (see manifest.json)")
        return "\n".join(lines)


def extract_batch(batch: dict[str, np.ndarray], cfg: AudioFeatureConfig, weights: dict[str, Weights] | None = None) -> dict[str, np.ndarray]:
    """One Ray Data batch: every feature kind per row, NaN plus a reason where a file fails.

    musicnn's network runs here over the whole batch's patches when ``weights``
    is given (a CPU cluster: no patches cross the object store); without it the
    batch carries each track's log-mel patches (``PATCHES``) to :class:`MusicnnStage`.
    """
    shapes = feature_shapes(cfg)
    n = len(batch["path"])
    out = {kind: np.full((n, *shape), np.nan, dtype=np.float32) for kind, shape in shapes.items()}
    errors, patches = [], [_NO_PATCHES] * n
    for i, path in enumerate(batch["path"]):
        try:
            values = extract_file(str(path), cfg)
            for kind in shapes:
                if kind in values:
                    out[kind][i] = values[kind]
            patches[i] = values.get(PATCHES, _NO_PATCHES)
            errors.append("")
        except AudioError as exc:
            errors.append(str(exc))
        except Exception as exc:  # a bug in feature code must not kill the whole run either
            errors.append(f"feature extraction failed: {type(exc).__name__}: {exc}")
    out = {"track_id": batch["track_id"], "path": batch["path"], "error": np.array(errors, dtype=object), **out}
    if "musicnn" not in cfg.features:
        return out
    if weights is None:
        out[PATCHES] = _object_array(patches)
        return out
    return _with_musicnn(out, patches, cfg, weights, "cpu")


_NO_PATCHES = np.empty((0, 0, 0), np.float32)  # a failed file's patches


def _object_array(items: list[np.ndarray]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _with_musicnn(out: dict[str, np.ndarray], patches: list[np.ndarray], cfg: AudioFeatureConfig, weights: dict[str, Weights], device: str) -> dict:
    """``out`` with musicnn's features filled in for the rows that decoded."""
    ok = np.flatnonzero(out["error"] == "")
    for kind, values in musicnn_features([patches[i] for i in ok], cfg, weights, device).items():
        out[kind][ok] = values
    return out


class MusicnnStage:
    """musicnn over Ray Data batches on an actor: the network loads once per actor, on its GPU where it has one."""

    def __init__(self, cfg: AudioFeatureConfig, weights: dict[str, Weights]) -> None:
        import torch

        self.cfg, self.weights = cfg, weights
        self.device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = dict(batch)
        patches = list(batch.pop(PATCHES))
        return _with_musicnn(batch, patches, self.cfg, self.weights, self.device)


def run_pipeline(
    tracks: pd.DataFrame,
    cfg: AudioFeatureConfig,
    rows_per_block: int | None = None,
    weights: dict[str, Weights] | None = None,
    musicnn_actors: int = 0,
) -> ExtractedFeatures:
    """Ray Data over the track table; features of the good files in source order, plus the skipped.

    Blocks hold about 2000 seconds of audio to decode (64 clips of 30 s, 512
    of 3 s): a few seconds of work on one core, so Ray's per-block overhead
    (bench/extract.py) stays small. musicnn costs several times the decoding
    per second of audio on a CPU core (bench/pretrained.py), so its blocks hold less. At least two blocks per CPU so no core idles while
    another finishes, and a multiple of the CPU count, so the last round is not
    one block on one core.

    musicnn's network runs in the decoding tasks, or with ``musicnn_actors``
    on that many actors of one GPU each (:func:`extract_features` asks for one
    per GPU of the cluster), fed the decoded patches.
    """
    import ray

    n_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    audio_seconds = 2000 / (1 + (10 * len(cfg.musicnn.models) if "musicnn" in cfg.features and not musicnn_actors else 0))
    rows_per_block = rows_per_block or int(np.clip(audio_seconds / (cfg.duration or 30.0), 8, 512))
    n_blocks = max(2 * n_cpus, -(-len(tracks) // rows_per_block))
    n_blocks = max(1, min(len(tracks), -(-n_blocks // n_cpus) * n_cpus))
    ds = ray.data.from_items(tracks[["track_id", "path"]].to_dict("records"), override_num_blocks=n_blocks)
    fused = weights if "musicnn" in cfg.features and not musicnn_actors else None
    ds = ds.map_batches(extract_batch, fn_kwargs={"cfg": cfg, "weights": fused}, batch_size=None, batch_format="numpy", num_cpus=1)
    if "musicnn" in cfg.features and musicnn_actors:
        # A GPU each (none on a CPU-only cluster, where this path is only taken by tests); a stage that asks for other resources
        # than the decoding tasks is not fused into them by Ray Data, so the files still decode on every CPU.
        gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
        stage = {"fn_constructor_kwargs": {"cfg": cfg, "weights": weights}, "compute": ray.data.ActorPoolStrategy(size=musicnn_actors), "num_gpus": gpus}
        ds = ds.map_batches(MusicnnStage, batch_size=None, batch_format="numpy", **stage)
    # Ray Data's own bars and executor lines give way to ours unless -v (musicvae.console).
    ray.data.DataContext.get_current().enable_progress_bars = console.verbose()
    parts = []
    with console.extraction_progress(len(tracks)) as advance:
        for part in ds.iter_batches(batch_size=None, batch_format="numpy"):
            parts.append(part)
            advance(len(part["track_id"]), int((part["error"] != "").sum()))
    merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    # Ray Data does not keep row order; the store follows the source listing.
    position = {tid: i for i, tid in enumerate(merged["track_id"])}
    order = [position[tid] for tid in tracks["track_id"]]
    errors = merged["error"][order]
    ok = [i for i, err in zip(order, errors) if err == ""]
    skipped = [SkippedFile(str(merged["track_id"][i]), str(merged["path"][i]), str(merged["error"][i])) for i in order if merged["error"][i] != ""]
    arrays = {kind: merged[kind][ok] for kind in feature_shapes(cfg)}
    return ExtractedFeatures([str(merged["track_id"][i]) for i in ok], arrays, skipped)


def _reusable(listing: list[dict], directory: str) -> tuple[dict[str, tuple[int | None, str]], ExtractedFeatures | None]:
    """Rows of the newest store of the same config whose file is unchanged (same path, size, mtime).

    Returns path -> (row in that store, or None with the skip reason) and the store's features.
    """
    candidates = previous_stores(directory)
    if not candidates:
        return {}, None
    loaded = read_store(candidates[0])
    if loaded is None:
        return {}, None
    old, manifest = loaded
    old_files = {f["path"]: f["fingerprint"] for f in manifest["files"]}
    row_of = {f["track_id"]: f["path"] for f in manifest["files"]}
    rows = {row_of[tid]: (i, "") for i, tid in enumerate(old.track_ids)}
    rows.update({s.path: (None, s.reason) for s in old.skipped})
    current = {f["path"]: f["fingerprint"] for f in listing}
    return {p: r for p, r in rows.items() if current.get(p) is not None and old_files.get(p) == current[p]}, old


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("musicvae", "librosa", "soundfile", "numpy", "ray"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def musicnn_weights(cfg: AudioFeatureConfig, cache_dir: str | Path) -> dict[str, Weights]:
    """Each musicnn model's converted weights (none without 'musicnn' in the features), read or converted on the driver:
    a missing or corrupt checkpoint fails here, naming the file, before any file is decoded."""
    if "musicnn" not in cfg.features:
        return {}
    from musicvae.data.features.musicnn import converted_weights

    root = expand_path(cfg.musicnn.checkpoint_dir) if cfg.musicnn.checkpoint_dir else None
    return {model: converted_weights(model, absolute(cache_dir), root) for model in cfg.musicnn.models}


def _gpus() -> int:
    """The cluster's GPUs: musicnn runs on one actor per GPU, or (none) in the decoding tasks."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def extract_features(tracks: pd.DataFrame, cfg: AudioFeatureConfig, cache_dir: str | Path) -> tuple[ExtractedFeatures, ExtractionReport]:
    """Features for every track: from the store when the inputs are unchanged, decoding only what changed.

    ``cache_dir`` may be a plain path or a filesystem URI (``s3://bucket/cache``), as may the tracks' paths.
    """
    listing = source_listing(tracks)
    weights = musicnn_weights(cfg, cache_dir)
    checkpoints = {model: w.key for model, w in weights.items()}
    directory = store_dir(absolute(cache_dir), cfg, listing, checkpoints)
    cached = read_store(directory)
    if cached is not None:
        features, _ = cached
        return features, ExtractionReport(len(tracks), len(features.track_ids), 0, features.skipped, 0.0, True, directory, checkpoints)

    start = time.perf_counter()
    reusable, old = _reusable(listing, directory)
    todo = tracks[~tracks["path"].isin(reusable)]
    fresh = (
        run_pipeline(todo, cfg, weights=weights, musicnn_actors=_gpus())
        if len(todo)
        else ExtractedFeatures([], {k: np.empty((0, *s), np.float32) for k, s in feature_shapes(cfg).items()})
    )
    seconds = time.perf_counter() - start

    # Merge reused and fresh rows in source order.
    fresh_row = {tid: i for i, tid in enumerate(fresh.track_ids)}
    fresh_skip = {s.track_id: s.reason for s in fresh.skipped}
    rows: list[tuple[str, str, int]] = []  # (track_id, 'old' or 'fresh', row there)
    skipped = []
    for tid, path in zip(tracks["track_id"], tracks["path"]):
        if path in reusable:
            row, reason = reusable[path]
            if row is None:
                skipped.append(SkippedFile(tid, path, reason))
            else:
                rows.append((tid, "old", row))
        elif tid in fresh_row:
            rows.append((tid, "fresh", fresh_row[tid]))
        else:
            skipped.append(SkippedFile(tid, path, fresh_skip.get(tid, "not extracted")))
    if not rows:
        reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in skipped[:5])
        raise ExtractionError(f"none of the {len(tracks)} files could be read ({reasons})")
    arrays = {kind: np.stack([(old.arrays if origin == "old" else fresh.arrays)[kind][row] for _, origin, row in rows]) for kind in feature_shapes(cfg)}
    features = ExtractedFeatures([tid for tid, _, _ in rows], arrays, skipped)
    manifest = {
        "config": cfg.model_dump(),
        "musicnn_checkpoints": checkpoints,
        "files": listing,
        "counts": {"tracks": len(tracks), "extracted": len(rows), "skipped": len(skipped), "decoded": len(todo)},
        "shapes": {kind: list(shape) for kind, shape in feature_shapes(cfg).items()},
        "seconds": round(seconds, 3),
        "versions": _versions(),
    }
    write_store(directory, features, feature_names(cfg), manifest)
    report = ExtractionReport(len(tracks), len(rows), len(todo), skipped, seconds, False, directory, checkpoints)
    return features, report
