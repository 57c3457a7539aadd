"""What the sweep machinery costs: the same trials as a plain process pool and as a musicvae sweep, in one run.

Both arms run exactly the same configurations, the grid models x β x seeds on
the FMA 5-genre features table (2996 tracks x 40 MFCC statistics), with the same
concurrency and the same per-trial work: ``run_trial`` (train, cluster, score)
then ``write_artifacts`` (embedding Parquet, latent analysis, weights and, unless
--no-figures, the UMAP/t-SNE and latent figures, as in a real sweep).

(a) plain loop: load the features, then a ProcessPoolExecutor(concurrency) of
    fresh ("spawn") worker processes, each given the FeatureSet once and
    torch.set_num_threads(cpus_per_trial) as the Tune trainable does;
    OMP_NUM_THREADS is set for them as Ray sets it for its workers. Timed from
    the start to the last worker's exit. No Ray, Tune, Optuna or MLflow.
(b) sweep: ``musicvae.tune.sweep.run_sweep`` on a grid sweep of the same space,
    timed whole: Ray start-up, features, Tune + Optuna, per-epoch reports and
    checkpoints, MLflow child runs with all artifacts, leaderboard, summary
    figures, Ray shutdown.

Prints the wall time of each arm, the overhead per trial ((b - a) / trials),
the ratio b / a against the goal (at most 1.2x), the summed per-trial
trial_seconds and artifact_seconds of each arm (the trials themselves should
cost the same) and, for the sweep, where its wall time went, measured by timing
musicvae's own steps (wrapped for this run, never estimated).

Fairness. Both arms start fresh worker processes that import torch, umap and
scikit-learn and pay UMAP's numba compilation (or its load from numba's disk
cache) once per worker process: the pool's workers and Tune's reused actors
(reuse_actors=True) each serve several trials; the number of distinct worker
processes of each arm is printed to show it. Before either arm an untimed
warm-up, in a throw-away process, imports everything both arms use (Ray,
Optuna and MLflow too) and runs one small UMAP and t-SNE, so the OS file cache
and numba's on-disk cache are equally warm for both. The driver's own imports
(musicvae.tune.sweep pulls in Ray, Tune, Optuna, MLflow) are done and reported
before timing, in neither arm. Each arm has its own projection cache, so the
sweep never reuses the plain loop's UMAPs. Everything is written to a temporary
folder (Tune storage, projection cache, SQLite tracking store, MLflow artifacts,
Ray's session folder via RAY_TMPDIR) that is removed at the end unless --keep.

The machine has few cores and may be shared: the load average is printed
before and after each arm, and a table of the CPU seconds used while each arm
ran, by the trial workers, the driver, Ray's own processes and everything
outside this benchmark. Wall times taken while other work used much CPU are
noise; the CPU totals of the benchmark's own processes are not.

    python bench/sweep_overhead.py                       # pca/vae x β 1, 4 x 3 seeds, 30 epochs, 2 at a time
    python bench/sweep_overhead.py --epochs 5 --seeds 1  # a quick check
    python bench/sweep_overhead.py --no-figures --keep   # without per-trial figures; keep logs and Ray's session logs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from _common import SHARED

GOAL = 1.2
DEFAULT_TABLE = SHARED / "fma5_seed_mfcc40.csv"
ALL_FIGURES = ["umap", "tsne", "disentanglement"]


# ------------------------------------------------------------------ the sweep file


def sweep_file(args: argparse.Namespace, table: Path, folder: Path) -> dict[str, Any]:
    """The grid sweep both arms run; ``folder`` holds everything the arm writes."""
    return {
        "name": "sweep-overhead",
        "description": "bench/sweep_overhead.py",
        "data": {
            "source": {"kind": "table", "path": str(table), "id_column": "track_id", "label_column": "genre"},
            "standardize": True,
            "cache_dir": str(folder / "cache"),
        },
        "space": {
            "model": list(args.models),
            "beta": list(args.betas),
            "latent_dim": 32,
            "epochs": args.epochs,
            "batch_size": 64,
            "lr": 0.001,
            "clusterer": "kmeans",
            "n_clusters": 5,  # the FMA table's genres, fixed: the plain loop runs one clustering per model and seed
            "seed": list(range(args.seeds)),
        },
        "search": {"metric": "silhouette", "sampler": "grid", "max_concurrent_trials": args.concurrency},
        "resources": {"cpus_per_trial": args.cpus_per_trial},
        # --no-figures: none after the sweep either (the plain arm draws none), so both arms do the same work
        "trials": {"figures": [] if args.no_figures else ALL_FIGURES, "after_sweep_projections": not args.no_figures},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "sweep-overhead"},
        "storage_path": str(folder / "ray_results"),
    }


def trial_configs(cfg: Any) -> list[dict[str, Any]]:
    """What the trainable's ``config`` holds for each grid point: the point plus the space's constants.

    Constants that do not apply to a point (epochs for PCA) are passed too;
    they change nothing in the trial.
    """
    from musicvae.config.params import grid_points

    constants = {k: v for k, v in cfg.space.items() if not isinstance(v, list)}
    return [{**constants, **point} for point in grid_points(cfg.space)]


def config_key(config: dict[str, Any], names: list[str]) -> tuple:
    """A grid point's identity across arms (β 1 and 1.0 are the same)."""
    return tuple((n, float(config[n]) if isinstance(config.get(n), (int, float)) and not isinstance(config.get(n), bool) else config.get(n)) for n in names)


# --------------------------------------------------------------- (a) plain loop

_DATA: Any = None


def _init_worker(data: Any, threads: int) -> None:
    global _DATA
    import torch

    torch.set_num_threads(threads)
    _DATA = data


def _plain_trial(config: dict[str, Any], trials: Any, resources: Any, cache_dir: str, out: str) -> dict[str, Any]:
    """One trial as ``tune_trainable`` runs it, minus Tune: no per-epoch reports, no checkpoints."""
    start = time.perf_counter()
    from musicvae.config.params import TrialParams
    from musicvae.training.trained_models import TrainingHooks
    from musicvae.trial import run_and_save

    params = TrialParams(**config)
    result, timing = run_and_save(params, _DATA, Path(out) / "artifacts", trials, cache_dir=Path(cache_dir), hooks=TrainingHooks(device=resources.device))
    return {"config": config, "pid": os.getpid(), **result.metrics, **timing, "call_seconds": time.perf_counter() - start}


@contextlib.contextmanager
def environment(**values: str) -> Any:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def plain_loop(cfg: Any) -> tuple[float, dict[str, float], list[dict[str, Any]]]:
    from musicvae.data.dataset import load_feature_set

    threads = max(1, int(cfg.resources.cpus_per_trial))
    folder = Path(cfg.data.cache_dir).parent
    phases: dict[str, float] = {}
    start = time.perf_counter()
    data = load_feature_set(cfg.data)
    phases["load features"] = time.perf_counter() - start
    # Ray sets OMP_NUM_THREADS to a worker's CPUs unless it is already set: the same here.
    omp = {} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": str(threads)}
    pool_start = time.perf_counter()
    with (
        environment(**omp),
        ProcessPoolExecutor(
            max_workers=cfg.search.max_concurrent_trials,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(data, threads),
        ) as pool,
    ):
        futures = [
            pool.submit(_plain_trial, config, cfg.trials, cfg.resources, cfg.data.cache_dir, str(folder / "trials" / f"{i:03d}"))
            for i, config in enumerate(trial_configs(cfg))
        ]
        results = [f.result() for f in futures]
    end = time.perf_counter()
    phases["process pool (all trials)"] = end - pool_start
    return end - start, phases, results


# -------------------------------------------------------------------- (b) sweep


class SweepTimer:
    """Times musicvae's own steps inside run_sweep by wrapping them for this run (restored after).

    A step that a future musicvae no longer has is simply not reported.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.marks: dict[str, float] = {}
        self._restore: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, label: str, after: Any = None) -> None:
        original = getattr(owner, name, None)
        if original is None:  # a silent skip once hid a moved function's row from the report: say what is gone
            raise AttributeError(f"bench/sweep_overhead.py times {owner.__name__}.{name}, which no longer exists: update the wrap")
        timer = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                value = original(*args, **kwargs)
            finally:
                timer.seconds[label] += time.perf_counter() - start
                timer.calls[label] += 1
                timer.marks[f"{label} end"] = time.perf_counter()
            return after(value) if after else value

        self._restore.append((owner, name, original))
        setattr(owner, name, timed)

    def install(self) -> None:
        import ray

        import musicvae.reporting.projection
        import musicvae.reporting.summary
        import musicvae.tracking.runs
        import musicvae.tracking.trial_tracking
        import musicvae.tune.sweep

        def time_fit(tuner: Any) -> Any:
            fit = tuner.fit

            def timed_fit(*args: Any, **kwargs: Any) -> Any:
                self.marks["fit start"] = time.perf_counter()
                try:
                    return fit(*args, **kwargs)
                finally:
                    self.marks["fit end"] = time.perf_counter()
                    self.seconds["Tuner.fit (all trials)"] = self.marks["fit end"] - self.marks["fit start"]

            tuner.fit = timed_fit
            return tuner

        self.wrap(musicvae.tune.sweep, "init_ray", "Ray start")
        self.wrap(musicvae.tune.sweep, "load_feature_set", "load features")
        self.wrap(musicvae.tracking.runs, "connect", "MLflow connect (creates the SQLite store)")
        self.wrap(musicvae.tracking.runs, "start_parent_run", "MLflow parent run")
        self.wrap(musicvae.tune.sweep, "build_tuner", "build Tuner", after=time_fit)
        for hook in ("on_trial_start", "on_trial_result", "on_trial_complete"):
            self.wrap(musicvae.tracking.trial_tracking.MLflowTrialCallback, hook, f"MLflow callback {hook}")
        self.wrap(musicvae.tracking.runs, "log_summary", "MLflow summary (leaderboard files)")
        self.wrap(musicvae.reporting.summary, "sweep_figures", "summary figures")
        self.wrap(musicvae.reporting.projection, "project", "UMAP/t-SNE run in the driver (incl. import)")
        self.wrap(ray, "shutdown", "Ray shutdown")

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)
        self._restore.clear()


def tune_results(storage: Path) -> list[dict[str, Any]]:
    """Each trial's last result as Tune stored it (result.json: config, pid, time_total_s, our metrics)."""
    finals = []
    for path in sorted(storage.rglob("result.json")):
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        final = next((r for r in reversed(lines) if "trial_seconds" in r), lines[-1] if lines else None)
        if final is not None:
            finals.append(final)
    return finals


def sweep_arm(cfg: Any, raw: dict[str, Any]) -> tuple[float, SweepTimer, Any, list[dict[str, Any]]]:
    import yaml

    from musicvae.tune.sweep import run_sweep

    timer = SweepTimer()
    timer.install()
    try:
        start = time.perf_counter()
        outcome = run_sweep(cfg, yaml.safe_dump(raw, sort_keys=False))
        wall = time.perf_counter() - start
    finally:
        timer.uninstall()
    timer.marks["start"], timer.marks["end"] = start, start + wall
    return wall, timer, outcome, tune_results(Path(cfg.storage_path))


# --------------------------------------------------------------------- plumbing


def warm_up() -> float:
    """Run in a throw-away process: imports and one small UMAP/t-SNE (numba's disk cache, the OS file cache)."""
    import numpy as np

    start = time.perf_counter()
    import mlflow  # noqa: F401
    import optuna  # noqa: F401
    import ray  # noqa: F401
    import ray.tune  # noqa: F401

    from musicvae.reporting import projection
    from musicvae.trial import run_trial  # noqa: F401

    x = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    for method in projection.PROJECTIONS:
        projection.project(x, method, seed=0)
    return time.perf_counter() - start


@contextlib.contextmanager
def output_to(path: Path, enabled: bool) -> Any:
    """Send everything written to fds 1 and 2 (Tune's progress, Ray's and the workers' logs) to a file."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


CPU_GROUPS = ("trial workers", "driver (this process)", "Ray's own processes, idle workers", "other processes (not this benchmark)")


class CPUAccount:
    """CPU seconds used while an arm runs, by group of processes (all processes sampled every second).

    Trial workers are the pool's workers or Tune's trial actors; "Ray's own
    processes" are the rest of this process tree (GCS, raylet, dashboard agent,
    log monitor, idle workers; the pool's resource tracker); anything outside the
    tree is other work sharing the machine. A process that ends between two
    samples loses its last second at most.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.elapsed = 0.0
        self.errors: list[str] = []
        self._seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _group(pid: int, me: int, in_tree: bool, cmdline: list[str]) -> str:
        if pid == me:
            return CPU_GROUPS[1]
        if not in_tree:
            return CPU_GROUPS[3]
        text = " ".join(cmdline or [])
        if text.startswith("ray::ImplicitFunc") or ("multiprocessing.spawn" in text and "resource_tracker" not in text):
            return CPU_GROUPS[0]
        return CPU_GROUPS[2]

    def _sample(self, first: bool) -> None:
        import psutil

        me = os.getpid()
        # Not process_iter(attrs): it stores .info on Process objects shared with other callers (Ray samples too).
        procs = {}
        for proc in psutil.process_iter():
            try:
                procs[proc.pid] = proc.as_dict(["ppid", "cpu_times", "create_time", "cmdline"])
            except psutil.Error:
                continue
        parents = {pid: info["ppid"] for pid, info in procs.items()}
        for pid, info in procs.items():
            times, created = info["cpu_times"], info["create_time"]
            if times is None or created is None:
                continue
            ancestor, hops = pid, 0
            while ancestor not in (me, 0, 1, None) and hops < 64:
                ancestor, hops = parents.get(ancestor), hops + 1
            key, used = (pid, created), times.user + times.system
            if not first:
                self.seconds[self._group(pid, me, ancestor == me, info["cmdline"])] += used - self._seen.get(key, 0.0)
            self._seen[key] = used

    def _run(self) -> None:
        first = True
        while first or not self._stop.wait(1.0):
            try:
                self._sample(first=first)
            except Exception as exc:  # noqa: BLE001 - a failed sample must not end the sampling
                self.errors.append(f"{type(exc).__name__}: {exc}")
            first = False

    def __enter__(self) -> CPUAccount:
        self._start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._sample(first=False)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"{type(exc).__name__}: {exc}")
        self.elapsed = time.perf_counter() - self._start

    def foreign(self) -> str:
        cores = os.cpu_count() or 1
        used = self.seconds[CPU_GROUPS[3]]
        share = used / (self.elapsed * cores) if self.elapsed else 0.0
        failed = f"; {len(self.errors)} failed samples, e.g. {self.errors[0]}" if self.errors else ""
        return f"other processes used {used:.0f} CPU s ({share:.0%} of the machine's {cores} cores){failed}"


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def total(rows: list[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in rows if isinstance(r.get(key), (int, float)))


def run_arm(name: str, log: Path, quiet: bool, fn: Any, *args: Any) -> Any:
    print(f"{name}: running ({load()}) ...", flush=True)
    try:
        with CPUAccount() as cpu, output_to(log, quiet):
            value = fn(*args)
    except BaseException:
        if quiet and log.exists():
            print(f"{name} failed; the last lines of {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
        raise
    print(f"{name}: done ({load()}); meanwhile {cpu.foreign()}", flush=True)
    return value, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE, help="the FMA features table (default: ../shared/data/fma5_seed_mfcc40.csv)")
    parser.add_argument("--models", nargs="+", default=["pca", "vae"])
    parser.add_argument("--betas", type=float, nargs="+", default=[1.0, 4.0], help="β values (VAE trials only)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 per configuration")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=2, help="trials at a time, in both arms")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--no-figures", action="store_true", help="no per-trial UMAP/t-SNE/latent figures (in both arms)")
    parser.add_argument("--sweep-first", action="store_true", help="run the sweep arm before the plain loop")
    parser.add_argument("--verbose", action="store_true", help="show the arms' own output instead of logging it to the temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, Tune results, MLflow store, Ray session logs)")
    args = parser.parse_args()

    table = args.table.resolve()
    if not table.is_file():
        raise SystemExit(f"no features table at {table}: pass --table PATH (the FMA 5-genre MFCC table, e.g. fma5_seed_mfcc40.csv)")

    root = Path(tempfile.mkdtemp(prefix="swo-"))  # short: Ray's socket paths live under it
    cwd = Path.cwd()
    try:
        from musicvae.config.sweep_file import parse_sweep

        raws = {arm: sweep_file(args, table, root / arm) for arm in ("plain", "sweep")}
        cfgs = {arm: parse_sweep(raw, origin=f"<{arm}>") for arm, raw in raws.items()}
        n_trials = len(trial_configs(cfgs["plain"]))

        started = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            warm_seconds = pool.submit(warm_up).result()
        warm_wall = time.perf_counter() - started
        started = time.perf_counter()
        import musicvae.data.dataset  # noqa: F401
        import musicvae.trial  # noqa: F401

        plain_imports = time.perf_counter() - started
        started = time.perf_counter()
        import musicvae.reporting.summary  # noqa: F401
        import musicvae.tracking.runs  # noqa: F401
        import musicvae.tune.sweep  # noqa: F401

        sweep_imports = time.perf_counter() - started

        figures = ", ".join(cfgs["plain"].trials.figures) or "none"
        print(
            f"{os.cpu_count()} CPUs; {n_trials} trials: models {' '.join(args.models)} x β {' '.join(f'{b:g}' for b in args.betas)} (VAE) "
            f"x {args.seeds} seed(s), {args.epochs} epochs, {args.concurrency} at a time, {args.cpus_per_trial:g} CPU each; figures: {figures}\n"
            f"Features: {table}\n"
            f"Not timed: warm-up process {warm_wall:.1f} s (imports + small UMAP/t-SNE {warm_seconds:.1f} s); "
            f"driver imports: musicvae.trial/dataset {plain_imports:.1f} s, then musicvae.tune.sweep (Ray, Tune, Optuna, MLflow) {sweep_imports:.1f} s\n"
            f"Temp folder: {root}",
            flush=True,
        )

        os.environ["RAY_TMPDIR"] = str(root / "ray")
        (root / "ray").mkdir()
        for arm in ("plain", "sweep"):
            (root / arm).mkdir()
        quiet = not args.verbose
        order = ["sweep", "plain"] if args.sweep_first else ["plain", "sweep"]
        done: dict[str, Any] = {}
        for arm in order:
            os.chdir(root / arm)  # MLflow's default artifact root (./mlruns) and anything else relative lands here
            try:
                if arm == "plain":
                    done[arm] = run_arm("(a) plain loop", root / "plain.log", quiet, plain_loop, cfgs[arm])
                else:
                    done[arm] = run_arm("(b) sweep", root / "sweep.log", quiet, sweep_arm, cfgs[arm], raws[arm])
            finally:
                os.chdir(cwd)
        (plain_wall, plain_phases, plain_rows), plain_cpu = done["plain"]
        (sweep_wall, timer, outcome, sweep_rows), sweep_cpu = done["sweep"]

        (root / "trials.json").write_text(json.dumps({"plain": plain_rows, "sweep": sweep_rows}, indent=1, default=str))
        report(args, n_trials, plain_wall, plain_phases, plain_rows, sweep_wall, timer, outcome, sweep_rows, cfgs)
        print(f"\nCPU seconds while each arm ran (sampled every second):\n{'':<40} {'(a) plain loop':>15} {'(b) sweep':>12}")
        for group in CPU_GROUPS:
            print(f"  {group:<38} {plain_cpu.seconds[group]:>15.0f} {sweep_cpu.seconds[group]:>12.0f}")
        ours = [sum(cpu.seconds[g] for g in CPU_GROUPS[:3]) for cpu in (plain_cpu, sweep_cpu)]
        print(
            f"  {'this benchmark (the three above)':<38} {ours[0]:>15.0f} {ours[1]:>12.0f}   "
            f"b / a {ours[1] / ours[0]:.2f}x (CPU, not wall: other work on the machine does not change it)"
        )
    finally:
        os.chdir(cwd)
        if args.keep:
            print(f"\nKept {root} (plain.log, sweep.log, ray/ session logs, sweep/ray_results, sweep/mlflow.db)")
        else:
            shutil.rmtree(root, ignore_errors=True)


def report(
    args: argparse.Namespace,
    n_trials: int,
    plain_wall: float,
    plain_phases: dict[str, float],
    plain_rows: list[dict[str, Any]],
    sweep_wall: float,
    timer: SweepTimer,
    outcome: Any,
    sweep_rows: list[dict[str, Any]],
    cfgs: dict[str, Any],
) -> None:
    # ---- the same trials? configurations, status, scores
    names = sorted(n for n, v in cfgs["plain"].space.items() if isinstance(v, list))
    plain_by = {config_key(r["config"], names): r for r in plain_rows}
    sweep_by = {config_key(r.get("config", {}), names): r for r in sweep_rows}
    table = outcome.leaderboard
    ok = int((table["status"] == "OK").sum()) if "status" in table else len(table)
    problems = []
    if set(plain_by) != set(sweep_by):
        problems.append(
            f"the arms ran different configurations: only plain {sorted(set(plain_by) - set(sweep_by))}, only sweep {sorted(set(sweep_by) - set(plain_by))}"
        )
    if ok != n_trials:
        problems.append(f"the sweep finished {ok} of {n_trials} trials OK:\n{table[table['status'] != 'OK'].to_string(index=False)}")
    diffs = [abs(plain_by[k]["silhouette"] - sweep_by[k]["silhouette"]) for k in set(plain_by) & set(sweep_by) if "silhouette" in sweep_by[k]]
    diffs = [d for d in diffs if not math.isnan(d)]

    # ---- the side-by-side table
    workers = (len({r["pid"] for r in plain_rows}), len({r["pid"] for r in sweep_rows if "pid" in r}))
    rows = [
        ("trials", f"{len(plain_rows)}", f"{len(sweep_rows)}", ""),
        ("wall s", f"{plain_wall:.1f}", f"{sweep_wall:.1f}", f"{sweep_wall - plain_wall:+.1f}"),
        (
            "sum trial_seconds",
            f"{total(plain_rows, 'trial_seconds'):.1f}",
            f"{total(sweep_rows, 'trial_seconds'):.1f}",
            f"{total(sweep_rows, 'trial_seconds') - total(plain_rows, 'trial_seconds'):+.1f}",
        ),
        (
            "sum artifact_seconds",
            f"{total(plain_rows, 'artifact_seconds'):.1f}",
            f"{total(sweep_rows, 'artifact_seconds'):.1f}",
            f"{total(sweep_rows, 'artifact_seconds') - total(plain_rows, 'artifact_seconds'):+.1f}",
        ),
        ("worker processes", f"{workers[0]}", f"{workers[1]}", ""),
    ]
    print(f"\n{'':<22} {'(a) plain loop':>15} {'(b) sweep':>12} {'b - a':>9}")
    for label, a, b, d in rows:
        print(f"{label:<22} {a:>15} {b:>12} {d:>9}")
    print("(the sweep's trial_seconds include its per-epoch Tune reports and checkpoints, which happen inside training)")
    ratio = sweep_wall / plain_wall
    print(
        f"\nOverhead per trial: {(sweep_wall - plain_wall) / n_trials:+.2f} s  ((b - a) / {n_trials} trials)\n"
        f"Ratio b / a: {ratio:.2f}x  -> {'PASS' if ratio <= GOAL else 'FAIL'} (goal: at most {GOAL:.1f}x)"
    )
    if diffs:
        print(f"Same trials: identical configurations; largest silhouette difference between the arms {max(diffs):.2g}")
    for problem in problems:
        print(f"WARNING: {problem}")

    # ---- where the time went (measured)
    print("\nPlain loop, measured:")
    for label, seconds in plain_phases.items():
        print(f"  {label:<48} {seconds:>7.1f} s")
    print("Sweep, measured (musicvae's steps, timed in place; sub-items are part of the line above them):")
    shown = 0.0
    for label in ("Ray start", "load features", "MLflow connect (creates the SQLite store)", "MLflow parent run", "build Tuner", "Tuner.fit (all trials)"):
        if label in timer.seconds:
            print(f"  {label:<48} {timer.seconds[label]:>7.1f} s")
            shown += timer.seconds[label]
    callbacks = [k for k in timer.seconds if k.startswith("MLflow callback")]
    for label in callbacks:
        print(f"    {label:<46} {timer.seconds[label]:>7.1f} s  ({timer.calls[label]} calls, driver)")
    in_trial = [
        float(r["time_total_s"]) - float(r.get("trial_seconds", 0)) - float(r.get("artifact_seconds", 0))
        for r in sweep_rows
        if "time_total_s" in r and "trial_seconds" in r
    ]
    if in_trial:
        print(
            f"    {'in trials, outside trial + artifact seconds':<46} {sum(in_trial):>7.1f} s  "
            f"(Tune's time_total_s - trial_seconds - artifact_seconds, summed over trials: the trainable's imports on a worker's "
            f"first trial, the final report with its artifact checkpoint; the plain loop's same measure, from its call time: "
            f"{sum(float(r['call_seconds']) - float(r['trial_seconds']) - float(r['artifact_seconds']) for r in plain_rows):.1f} s)"
        )
    if "fit end" in timer.marks:
        after_fit = timer.marks["end"] - timer.marks["fit end"]
        print(f"  {'after fit, until run_sweep returns':<48} {after_fit:>7.1f} s")
        shown += after_fit
        for label in ("MLflow summary (leaderboard files)", "summary figures", "Ray shutdown"):
            if label in timer.seconds:
                print(f"    {label:<46} {timer.seconds[label]:>7.1f} s")
            projections = "UMAP/t-SNE run in the driver (incl. import)"
            if label == "summary figures" and projections in timer.seconds:
                print(f"      {projections:<44} {timer.seconds[projections]:>7.1f} s  ({timer.calls[projections]} calls)")
    print(f"  {'other (between the steps above)':<48} {sweep_wall - shown:>7.1f} s")


if __name__ == "__main__":
    main()
