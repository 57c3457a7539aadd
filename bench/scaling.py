"""Throughput with 1 and 2 Ray nodes on this machine, each node limited to 1 CPU, side by side in one run.

Two measures, each first on a one-node cluster (a head with 1 CPU), then on
the same cluster after a second node (1 CPU) joins:

* feature extraction: Ray Data decoding N real fma_small MP3s (symlinked
  copies; every file is a real MP3 decode) into 40 MFCCs, no cache;
* trials: a sweep of K identical-cost MLP-VAE trials (seeds differ) through
  musicvae's Tune + Optuna + MLflow path, two at a time.

Nodes are real ``ray start`` processes with token authentication (see
musicvae/tune/localcluster.py). The per-clip and per-trial costs it prints feed
the README's wall-time model for FMA-small and FMA-full on N GPU nodes.

    python bench/scaling.py                          # N = 200 clips, K = 8 trials
    python bench/scaling.py --clips-n 400 --trials 12 --duration 30
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path

import yaml

# This process is a client of the cluster: Ray reads the token when it is first imported.
TOKEN = secrets.token_hex(32)
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)

from _common import SHARED  # noqa: E402
from extract import DEFAULT_CLIPS, make_copies  # noqa: E402  (the same N copies as bench/extract.py)

from musicvae.config.sections import AudioFeatureConfig  # noqa: E402
from musicvae.config.sweep_file import parse_sweep  # noqa: E402
from musicvae.tune.localcluster import LocalCluster  # noqa: E402


def connect(cluster: LocalCluster) -> None:
    import ray

    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


def wait_for_cpus(n: int, timeout: float = 60) -> None:
    import ray

    deadline = time.monotonic() + timeout
    while ray.cluster_resources().get("CPU", 0) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster never reached {n} CPUs: {ray.cluster_resources()}")
        time.sleep(0.5)


def extraction_seconds(tracks, cfg: AudioFeatureConfig) -> float:
    from musicvae.data.features.extract import run_pipeline

    start = time.perf_counter()
    result = run_pipeline(tracks, cfg)
    assert not result.skipped, result.skipped[:3]
    return time.perf_counter() - start


def sweep_seconds(table: Path, work: Path, trials: int, epochs: int, tag: str) -> tuple[float, float]:
    """(wall seconds of the sweep, mean seconds of one trial as the trial measured it)."""
    from musicvae.tune.sweep import run_sweep

    raw = {
        "name": f"scaling-{tag}",
        "data": {"source": {"kind": "table", "path": str(table), "id_column": "track_id", "label_column": "genre"}, "cache_dir": str(work / "cache")},
        "space": {"model": "vae", "latent_dim": 32, "epochs": epochs, "seed": list(range(trials)), "n_clusters": 5},
        "search": {"sampler": "grid", "max_concurrent_trials": 2},
        "trials": {"figures": []},
        "tracking": {"uri": f"sqlite:///{work / 'mlflow.db'}", "experiment": "scaling"},
        "storage_path": str(work / "ray_results"),
    }
    outcome = run_sweep(parse_sweep(raw), yaml.safe_dump(raw))
    ok = outcome.leaderboard[outcome.leaderboard["status"] == "OK"]
    assert len(ok) == trials, outcome.leaderboard[["trial", "status", "error"]]
    return outcome.seconds, float(ok["seconds"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of real MP3s (copied N times by symlink)")
    parser.add_argument("--clips-n", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds decoded per clip (FMA clips are 30 s)")
    parser.add_argument("--table", type=Path, default=SHARED / "fma5_seed_mfcc40.csv", help="FMA features for the trials")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    if not args.table.exists() or not args.clips.exists():
        raise SystemExit(f"needs the FMA clips ({args.clips}) and features table ({args.table}); see --help")

    import ray

    cfg = AudioFeatureConfig(duration=args.duration)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp) / "logs", token=TOKEN) as cluster:
        tmp = Path(tmp)
        tracks = make_copies(args.clips, args.clips_n, tmp)
        cluster.add_node("head_node", cpus=1)
        for nodes in (1, 2):
            if nodes == 2:
                cluster.add_node("worker_node", cpus=1)
            connect(cluster)
            wait_for_cpus(nodes)
            extraction_seconds(tracks.head(4 * nodes), cfg)  # warm-up: workers import librosa/numba on every node
            extract_s = extraction_seconds(tracks, cfg)
            ray.shutdown()  # run_sweep joins the cluster itself (RAY_ADDRESS)
            os.environ["RAY_ADDRESS"] = cluster.address
            sweep_s, trial_s = sweep_seconds(args.table, tmp / f"sweep{nodes}", args.trials, args.epochs, f"{nodes}node")
            del os.environ["RAY_ADDRESS"]
            rows.append((nodes, extract_s, sweep_s, trial_s))
            print(f"[{nodes} node(s)] extraction {extract_s:.1f} s, sweep {sweep_s:.1f} s", flush=True)

    (n1, e1, s1, t1), (n2, e2, s2, t2) = rows
    print(f"\n{args.clips_n} clips x {args.duration:g} s decoded; {args.trials} VAE trials x {args.epochs} epochs on 2996 tracks; 1 CPU per node")
    print(f"{'nodes':>5} {'clips/s':>9} {'s/clip/CPU':>11} {'trials/min':>11} {'s/trial':>8}")
    for nodes, extract_s, sweep_s, trial_s in rows:
        print(f"{nodes:>5} {args.clips_n / extract_s:>9.2f} {extract_s * nodes / args.clips_n:>11.3f} {60 * args.trials / sweep_s:>11.2f} {trial_s:>8.1f}")
    print(f"\nSpeed-up with the second node: extraction {e1 / e2:.2f}x, trials {s1 / s2:.2f}x (ideal 2.00x)")


if __name__ == "__main__":
    main()
