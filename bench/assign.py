"""``musicvae assign`` on Ray Data against a serial loop over the same pipeline, side by side in one run.

A pipeline is fitted once per source kind, as a sweep's trial fits it:

* table: the study's FMA table (40 MFCC statistics; ../shared/data) through a VAE (latent 32) and
  K-Means; the collections are N rows resampled from it (with a little noise, so no two are alike);
* audio: the demo collection (6 genres x 50 clips of 5 s, generated here) through 40 MFCCs, PCA and K-Means.

For each collection it times the serial loop (``Pipeline.predict`` over the
collection in chunks of 256 tracks, one process) and ``assign`` (Ray Data
blocks, the files written), both after a warm-up, and prints tracks per
second, the ratio and the peak resident memory of each (the serial process;
the Ray driver plus its workers). Both give the same clusters (checked).

    python bench/assign.py                     # N = 3,000 and 30,000 table rows, and the demo audio (about 5 minutes on 2 cores)
    python bench/assign.py --rows 3000 --no-audio
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import SHARED  # noqa: E402
from extract import PeakMemory  # noqa: E402  (bench/extract.py: summed RSS of this process and Ray's workers)

from musicvae.config.params import TrialParams  # noqa: E402
from musicvae.config.sections import TrialsConfig  # noqa: E402
from musicvae.config.sweep_file import parse_sweep  # noqa: E402
from musicvae.data.dataset import load_feature_set  # noqa: E402
from musicvae.serving.assign import assign  # noqa: E402
from musicvae.serving.pipeline import load_pipeline  # noqa: E402
from musicvae.trial import run_and_save  # noqa: E402

CHUNK = 256


def fit(source: dict, params: TrialParams, folder: Path, audio: dict | None = None) -> Path:
    """A trial's pipeline, fitted on ``source``; its folder."""
    data = {"source": source, "cache_dir": str(folder / "cache"), **({"audio": audio} if audio else {})}
    fitted = load_feature_set(parse_sweep({"name": "bench", "data": data}).data)
    run_and_save(params, fitted, folder / "trial", TrialsConfig(figures=[]))
    return folder / "trial" / "pipeline"


def resampled_table(n: int, folder: Path) -> Path:
    """n rows drawn with replacement from the FMA table, each with noise of 1 % of its column's spread."""
    table = pd.read_csv(SHARED / "fma5_seed_mfcc40.csv")
    features = [c for c in table.columns if c.startswith("mfcc_")]
    rng = np.random.default_rng(n)
    rows = table.iloc[rng.integers(0, len(table), n)].reset_index(drop=True)
    rows[features] += rng.normal(0, 0.01, (n, len(features))) * table[features].std().to_numpy()
    rows["track_id"] = [f"r{i:06d}" for i in range(n)]
    path = folder / f"table-{n}.csv"
    rows[["track_id", *features]].to_csv(path, index=False)
    return path


def serial(pipeline_folder: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The pipeline in one process, chunk after chunk: what a user's own loop over ``predict`` does."""
    pipeline = load_pipeline(str(pipeline_folder))
    return pd.concat([pipeline.predict(frame.iloc[i : i + CHUNK]) for i in range(0, len(frame), CHUNK)], ignore_index=True)


def compare(label: str, pipeline: Path, source: Path, frame: pd.DataFrame, out: Path) -> str:
    with PeakMemory(include_ray_workers=False) as serial_memory:
        start = time.perf_counter()
        alone = serial(pipeline, frame)
        serial_seconds = time.perf_counter() - start
    with PeakMemory(include_ray_workers=True) as ray_memory:
        start = time.perf_counter()
        report = assign(str(pipeline), source, out)
        ray_seconds = time.perf_counter() - start
    assigned = pd.read_parquet(out / "assignments.parquet")
    agree = alone.loc[alone["cluster"].notna()].set_index("track_id")["cluster"].astype(int).reindex(assigned["track_id"]).to_numpy()
    assert (agree == assigned["cluster"].to_numpy()).all(), f"{label}: assign and the serial loop disagree"
    n = report.n_tracks
    return (
        f"| {label} | {n} | {n / serial_seconds:.0f} | {n / ray_seconds:.0f} | {serial_seconds / ray_seconds:.2f}x "
        f"| {serial_memory.peak / 2**20:.0f} | {ray_memory.peak / 2**20:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[3000, 30000])
    parser.add_argument("--no-audio", action="store_true")
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    lines = ["| collection | tracks | serial tracks/s | assign tracks/s | ratio | serial peak MB | assign peak MB (driver + workers) |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.rows:
            if not SHARED.exists():
                raise SystemExit(f"the table collections need the shared data at {SHARED} (set MUSICVAE_SHARED_DATA)")
            source = {"kind": "table", "path": str(SHARED / "fma5_seed_mfcc40.csv"), "label_column": "genre"}
            pipeline = fit(source, TrialParams(model="vae", latent_dim=32, epochs=20, clusterer="kmeans"), folder / "table-fit")
            warm = resampled_table(500, folder)
            assign(str(pipeline), warm, folder / "warm")  # Ray's workers import torch and the pipeline once, not timed
            for n in args.rows:
                path = resampled_table(n, folder)
                lines.append(compare("FMA table resampled, VAE + K-Means", pipeline, path, pd.read_csv(path), folder / f"out-{n}"))
                print(lines[-1], flush=True)
        if not args.no_audio:
            from musicvae.data.sources import list_tracks
            from musicvae.data.synth import synthesize_collection

            demo = folder / "demo"
            synthesize_collection(demo, per_genre=50, seed=3, clip_seconds=5.0)
            source = {"kind": "folder", "root": str(demo)}
            pipeline = fit(source, TrialParams(model="pca", latent_dim=16, clusterer="kmeans"), folder / "audio-fit", audio={"duration": 5.0})
            tracks = list_tracks(parse_sweep({"name": "x", "data": {"source": source}}).data.source, str(folder))
            lines.append(compare("demo audio (5 s FLAC), MFCC + PCA + K-Means", pipeline, demo, tracks[["track_id", "path"]], folder / "out-audio"))
    ray.shutdown()
    print(f"\n{args.cpus} CPUs; both sides warm; the same clusters on both sides (checked)\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
