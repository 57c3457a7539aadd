"""Ray Data extraction vs the study's serial librosa loop, side by side in one run.

Both compute the same feature (40 MFCCs averaged over time) on the same files:
N copies of the real fma_small MP3s (30 s, 44.1 kHz stereo), so every file
costs a real MP3 decode. Prints tracks/s for both, the ratio, and peak
resident memory (the serial process; the Ray driver plus its workers).

    python bench/extract.py                      # N = 200 and 800
    python bench/extract.py --copies 200 --duration 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

from musicvae.config.sections import AudioFeatureConfig
from musicvae.data.features.extract import run_pipeline

DEFAULT_CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fma_small_clips" / "fma_small"


class PeakMemory:
    """Samples the summed RSS of this process and Ray's worker processes every 250 ms.

    Sparse sampling on purpose: walking the process table costs CPU that the
    measured pipeline would otherwise have (2 cores here).
    """

    def __init__(self, include_ray_workers: bool):
        self.include_ray_workers = include_ray_workers
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = psutil.Process().memory_info().rss
        if self.include_ray_workers:
            for proc in psutil.process_iter(["name", "memory_info"]):
                name = proc.info["name"] or ""
                if name.startswith("ray::") and proc.info["memory_info"]:
                    total += proc.info["memory_info"].rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(0.25)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_copies(clips: Path, n: int, folder: Path) -> pd.DataFrame:
    """n distinct paths (symlinks) cycling over the real clips."""
    sources = sorted(clips.rglob("*.mp3"))
    if not sources:
        raise SystemExit(f"no MP3 files under {clips}")
    rows = []
    for i in range(n):
        link = folder / f"{i:06d}.mp3"
        if not link.exists():
            link.symlink_to(sources[i % len(sources)].resolve())
        rows.append({"track_id": f"{i:06d}", "path": str(link)})
    return pd.DataFrame(rows)


def serial_loop(paths: list[str], cfg: AudioFeatureConfig) -> int:
    """The study's way: librosa.load then librosa.feature.mfcc, one file after another."""
    import librosa

    done = 0
    for path in paths:
        y, sr = librosa.load(path, sr=cfg.sample_rate, mono=True, offset=cfg.offset, duration=cfg.duration)
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_length).mean(axis=1)
        done += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds decoded per file (the study: 3)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    args = parser.parse_args()

    import ray

    cfg = AudioFeatureConfig(duration=args.duration)
    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray_start = time.perf_counter() - started
    # One-time costs, paid once per session by both sides and reported, not timed
    # below: Ray's workers import librosa/numba, the serial process does the same.
    with tempfile.TemporaryDirectory() as tmp:
        warm = make_copies(args.clips, 2 * args.cpus, Path(tmp))
        started = time.perf_counter()
        run_pipeline(warm, cfg)
        ray_warm = time.perf_counter() - started
        serial_loop(warm["path"].tolist()[:1], cfg)
    print(
        f"{args.cpus} CPUs; clips {args.clips}; {args.duration:g} s decoded per file\n"
        f"One-time: Ray start {ray_start:.1f} s, worker warm-up (imports) {ray_warm:.1f} s\n"
    )

    header = f"{'N':>6} {'serial tr/s':>12} {'ray tr/s':>10} {'ratio':>7} {'serial peak MB':>15} {'ray peak MB':>12} {'skipped':>8}"
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.copies:
            tracks = make_copies(args.clips, n, Path(tmp))
            with PeakMemory(include_ray_workers=False) as serial_mem:
                start = time.perf_counter()
                serial_loop(tracks["path"].tolist(), cfg)
                serial_s = time.perf_counter() - start
            with PeakMemory(include_ray_workers=True) as ray_mem:
                start = time.perf_counter()
                result = run_pipeline(tracks, cfg)
                ray_s = time.perf_counter() - start
            skipped = len(result.skipped)
            print(
                f"{n:>6} {n / serial_s:>12.2f} {n / ray_s:>10.2f} {serial_s / ray_s:>6.2f}x "
                f"{serial_mem.peak / 2**20:>15.0f} {ray_mem.peak / 2**20:>12.0f} {skipped:>8}",
                flush=True,
            )
    ray.shutdown()


if __name__ == "__main__":
    main()
