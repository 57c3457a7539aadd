"""Sweep throughput on one GPU: 1, 2, 4 and 8 trials per GPU against the same grid on CPU, in one run.

Every arm is a real sweep (``musicvae.tune.sweep.run_sweep``: Ray Tune, Optuna,
MLflow, checkpoints, selection) of the same grid, the β-VAEs of the hard task
(sweeps/demo-hard.yaml: vae and conv_vae at β 0.5/1/4/10, K-Means, three
seeds, 30 epochs; 24 trials) on the demo collection the product generates
itself (``data.source: {kind: synth}``), or with ``--table PATH`` on a
features table (sweeps/hard.yaml's data and models: vae and multimodal_vae;
the study's table is ../shared/data/fma5_seed_mfcc40.csv). Arms:

  gpu-1, gpu-2, gpu-4, gpu-8   resources.device cuda, gpus_per_trial 1, 0.5, 0.25, 0.125,
                               search.max_concurrent_trials 1, 2, 4, 8 (fractional GPUs: trials packed on one GPU)
  cpu                          resources.device cpu, --cpu-concurrency trials at a time (default 8)
  gpu-1-alone                  as gpu-1 with trials.replicas: false: each seed's trial trains its own model

Every arm but gpu-1-alone runs as a sweep does by default: the trial that trains a
model trains its other seeds beside it as one vectorised model (musicvae.training.replicas),
where a probe step finds that exact on that device; the Conv-VAE never (see
musicvae.training.replicas.vectorises). gpu-1 against gpu-1-alone is what that gives on the
GPU. Whether CUDA's batched kernels pass the probe is printed per arm, from the
trials' notes (each seed trained alone, or with its replicas): "replica trials".

Each arm runs 1 CPU per trial and no per-trial figures (``trials.figures: []``),
so the GPU arms measure training, clustering and the sweep's own work. The
features are extracted once (Ray Data) before the arms, into a feature store
every arm reads, so extraction is not timed; an untimed warm-up process
imports torch and musicvae and runs one CUDA convolution first (the OS file
cache and CUDA's start are not charged to the first arm).

Budget: all arms together get --budget-s (default 480 s), after the start-up
(imports, Ray, the demo collection, extraction, warm-up). Each arm stops at a
fixed number of trials (--trials; default the whole grid) or at its time slice
(``search.time_budget_s``: the remaining budget shared among the arms left,
less their measured overhead outside ``Tuner.fit``), whichever comes first;
the table's "stopped by" column says which. A time slice stops the trials
still running (Ray Tune's time budget): they are not counted. The grid is run
in an interleaved order (seed, then β, then model), so any prefix of it mixes
the models alike in every arm.

Figures, per arm: trials done (OK), the window (fit start to the last trial's
completion, from Tune's result timestamps, 1 s resolution), trials per minute
over that window and its ratio to gpu-1, the mean trial seconds (training +
clustering, as the trial measured it), GPU utilisation mean/max and the peak
GPU memory used (pynvml when installed, else nvidia-smi, every 0.5 s while
the arm runs; the whole device, so other processes on it count too: the idle
memory is printed before each arm), and the mean ARI and silhouette over the
configurations every arm finished, with the largest per-configuration
difference to gpu-1 and to cpu (packing should not change results: with cuDNN
deterministic, the GPU arms should agree exactly; CPU and GPU arithmetic
differ slightly). A line per arm is printed (flushed) as it ends, so a run
killed by a timeout still shows what was measured; then one table, and
``gpu throughput: <arm> <trials/min>`` per arm.

Without a CUDA GPU (no nvidia-smi, or torch.cuda.is_available() false) it
exits with status 2, unless --cpu-smoke: the CPU arm alone on a tiny grid
(2 trials, 2 epochs, 10 clips per genre), to check this script's code path.

    python bench/gpu.py                                    # every arm, 480 s in all (~9 min with start-up on an H200 box)
    python bench/gpu.py --budget-s 300 --packings 1 4 8    # fewer arms
    python bench/gpu.py --table ../shared/data/fma5_seed_mfcc40.csv --models vae
    python bench/gpu.py --cpu-smoke                        # no GPU: the CPU arm on a tiny grid
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from _common import ROOT  # noqa: E402
from sweep_overhead import load, output_to, run_arm, sweep_arm  # noqa: E402

PACKINGS = (1, 2, 4, 8)
DEFAULT_OVERHEAD_S = 30.0  # an arm's time outside Tuner.fit (parent run, Tune start, selection, summary figures), until one is measured
MIN_SLICE_S = 20.0  # an arm with less time than this is not started
GRACE_S = 60.0  # past the budget by this much, the running arm is interrupted (as Ctrl-C would)
WARM_UP = """
import sys, torch
import musicvae.tune.trainable, musicvae.trial  # noqa: F401 - the trials' imports, into the OS file cache
if sys.argv[1] == "cuda":
    x = torch.randn(64, 1, 20, 128, device="cuda", requires_grad=True)
    torch.nn.Conv2d(1, 32, 3, stride=2).cuda()(x).sum().backward()
    torch.cuda.synchronize()
"""


# --------------------------------------------------------------------------- the GPU


def no_gpu_reason() -> str | None:
    """Why this machine cannot run the GPU arms, or None."""
    import torch

    reasons = [] if torch.cuda.is_available() else ["torch.cuda.is_available() is False"]
    reasons += [] if shutil.which("nvidia-smi") else ["no nvidia-smi on PATH"]
    return "; ".join(reasons) or None


def pin_one_gpu() -> str:
    """The GPU the arms use (nvidia-smi's -i: an index or a UUID); with several visible, only the first is shown to Ray."""
    first = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip() or "0"
    os.environ["CUDA_VISIBLE_DEVICES"] = first
    return first


class GPUSampler:
    """Utilisation (%) and memory used (MiB) of one GPU every ``interval`` seconds, in a thread: pynvml if installed, else nvidia-smi."""

    def __init__(self, device: str, interval: float = 0.5) -> None:
        self.device, self.interval = device, interval
        self.samples: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            by_uuid = not device.isdigit()
            self._handle = pynvml.nvmlDeviceGetHandleByUUID(device) if by_uuid else pynvml.nvmlDeviceGetHandleByIndex(int(device))
            self._nvml = pynvml
        except Exception:  # noqa: BLE001 - not installed, or no NVML: nvidia-smi then
            self._nvml = None
        self.source = "pynvml" if self._nvml else "nvidia-smi"

    def read(self) -> tuple[float, float]:
        if self._nvml is not None:
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            return float(rates.gpu), self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-i", self.device]
        line = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True).stdout.strip().splitlines()[0]
        util, memory = (float(v) for v in line.split(","))
        return util, memory

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.samples.append(self.read())
            except Exception as exc:  # noqa: BLE001 - a failed sample must not end the sampling
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> GPUSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"util_mean": math.nan, "util_max": math.nan, "memory_peak": math.nan, "samples": 0}
        utils, memory = [u for u, _ in self.samples], [m for _, m in self.samples]
        return {"util_mean": sum(utils) / len(utils), "util_max": max(utils), "memory_peak": max(memory), "samples": len(self.samples)}


# ------------------------------------------------------------------ the sweep files


def base_file(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """The hard task's sweep file (raw YAML and parsed): demo-hard.yaml, or hard.yaml with --table."""
    from musicvae.config.sweep_file import parse_sweep

    path = ROOT / "sweeps" / ("hard.yaml" if args.table else "demo-hard.yaml")
    raw = yaml.safe_load(path.read_text())
    return raw, parse_sweep(raw, origin=str(path))


def grid(args: argparse.Namespace, raw: dict[str, Any], base: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The data section, the space and its points in the interleaved order (seed, β, model) every arm runs."""
    from musicvae.config.params import VARIATIONAL_MODELS, grid_points

    data = dict(raw["data"])
    if args.table:
        data["source"] = {**data["source"], "path": str(args.table.resolve())}
    elif args.per_genre:
        data["source"] = {**data["source"], "per_genre": args.per_genre}
    space_models = base.space["model"] if isinstance(base.space["model"], list) else [base.space["model"]]
    models = args.models or [m for m in space_models if m in VARIATIONAL_MODELS]
    if "multimodal_vae" not in models:
        data.pop("text", None)  # no text modality to embed for models that do not read it
    file_seeds = base.space.get("seed", [0])
    space = {
        "model": list(models),
        "beta": list(args.betas or base.space.get("beta", [1.0])),
        "latent_dim": base.space.get("latent_dim", 32),
        "epochs": args.epochs or base.space.get("epochs", 30),
        "clusterer": "kmeans",
        "n_clusters": base.space.get("n_clusters", 5),  # the sweep file's k (hard.yaml and demo-hard.yaml fix theirs)
        "seed": list(range(args.seeds)) if args.seeds else list(file_seeds if isinstance(file_seeds, list) else [file_seeds]),
    }
    order = {name: list(space[name]) for name in ("model", "beta", "seed")}
    points = sorted(grid_points(space), key=lambda p: tuple(order[n].index(p[n]) if n in p else -1 for n in ("seed", "beta", "model")))
    return data, space, points


def sweep_file(arm: dict[str, Any], data: dict[str, Any], space: dict[str, Any], points: list, metric: Any, folder: Path, cache: Path) -> dict[str, Any]:
    """One arm's sweep file; ``folder`` holds what the arm writes, ``cache`` the feature store every arm shares."""
    raw = {
        "name": f"gpu-bench-{arm['name']}",
        "description": "bench/gpu.py",
        "data": {**data, "cache_dir": str(cache)},
        "space": dict(space),
        "search": {
            "metric": metric,
            "sampler": "grid",
            "points_to_evaluate": points,
            "num_samples": arm["trials"],
            "max_concurrent_trials": arm["concurrency"],
            "time_budget_s": arm["slice"],
        },
        "resources": {"cpus_per_trial": arm["cpus"], "gpus_per_trial": arm["gpus"], "device": arm["device"]},
        "trials": {"figures": []},
        "tracking": {"uri": f"sqlite:///{folder / 'mlflow.db'}", "experiment": "gpu-bench"},
        "storage_path": str(folder / "ray_results"),
    }
    if arm.get("alone"):
        raw["trials"]["replicas"] = False
    return raw


# -------------------------------------------------------------------------- an arm


def run_one(arm: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """Run the arm's sweep; its figures from the leaderboard and Tune's stored results."""
    from musicvae.config.sweep_file import parse_sweep

    cfg = parse_sweep(raw, origin=f"<{arm['name']}>")
    offset = time.time() - time.perf_counter()  # perf_counter marks -> unix time, to compare with Tune's timestamps
    total_s, timer, outcome, stored = sweep_arm(cfg, raw)
    table = outcome.leaderboard
    ok = table[table["status"] == "OK"]
    finals = [r for r in stored if "trial_seconds" in r and not r.get("failed")]
    fit_start = timer.marks.get("fit start", timer.marks["start"]) + offset
    done_at = [float(r["timestamp"]) for r in finals if "timestamp" in r]
    window = max(done_at) - fit_start if done_at else math.nan
    trials = [
        {
            "model": row["model"],
            "beta": None if row["beta"] == "" else float(row["beta"]),
            "seed": int(row["seed"]),
            "ari": row["ari"],
            "silhouette": row["silhouette"],
        }
        for _, row in ok.iterrows()
    ]
    failed = table[table["status"] == "FAILED"]
    return {
        "done": len(ok),
        "failed": len(failed),
        "stopped": int((table["status"] == "STOPPED").sum()),
        "first_error": str(failed["error"].iloc[0]) if len(failed) else "",
        "fit_s": timer.seconds.get("Tuner.fit (all trials)", math.nan),
        "total_s": total_s,
        "window_s": window,
        "first_done_s": min(done_at) - fit_start if done_at else math.nan,
        "trials_per_min": 60 * len(done_at) / window if done_at and window > 0 else math.nan,
        "trial_s": float(ok["seconds"].mean()) if len(ok) else math.nan,
        "trials": trials,
        "replica_trials": sum("vectorised" in str((r.get("notes") or {}).get("fit_seconds", "")) for r in finals),  # trained with its replicas
    }


def arms_to_run(args: argparse.Namespace, n_points: int) -> list[dict[str, Any]]:
    trials = min(args.trials or n_points, n_points)
    cpu_concurrency = min(args.cpu_concurrency, os.cpu_count() or 1)
    arms = [] if args.cpu_smoke else [{"name": f"gpu-{k}", "per_gpu": k, "concurrency": k, "gpus": 1 / k, "device": "cuda"} for k in args.packings]
    if not args.no_cpu or args.cpu_smoke:
        arms.append({"name": "cpu", "per_gpu": None, "concurrency": cpu_concurrency, "gpus": 0, "device": "cpu"})
    if not args.no_alone and not args.cpu_smoke and 1 in args.packings:
        arms.insert(1, {"name": "gpu-1-alone", "per_gpu": 1, "concurrency": 1, "gpus": 1, "device": "cuda", "alone": True})
    for arm in arms:
        arm.update(trials=trials, cpus=args.cpus_per_trial)
    return arms


# ------------------------------------------------------------------------- output


def key(trial: dict[str, Any]) -> tuple:
    return trial["model"], trial["beta"], trial["seed"]


def largest_difference(a: dict[tuple, dict], b: dict[tuple, dict], metric: str) -> tuple[int, float]:
    common = set(a) & set(b)
    diffs = [abs(a[k][metric] - b[k][metric]) for k in common if not (math.isnan(a[k][metric]) or math.isnan(b[k][metric]))]
    return len(common), max(diffs) if diffs else math.nan


def number(value: Any, digits: int) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_table(arms: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> None:
    ran = [a for a in arms if a["name"] in results and results[a["name"]].get("done") is not None]
    by_arm = {a["name"]: {key(t): t for t in results[a["name"]]["trials"]} for a in ran}
    common = set.intersection(*(set(v) for v in by_arm.values())) if by_arm else set()
    reference = results.get("gpu-1", {}).get("trials_per_min", math.nan)
    header = (
        "arm",
        "trials/GPU",
        "concurrent",
        "done",
        "stopped by",
        "wall s",
        "trials/min",
        "vs gpu-1",
        "trial s",
        "GPU util mean %",
        "max %",
        "peak GPU MiB",
        "mean ARI",
        "mean silhouette",
        "replica trials",
    )
    rows = []
    for arm in arms:
        name, per_gpu = arm["name"], arm["per_gpu"]
        result = results.get(name)
        if result is None or result.get("done") is None:
            status = result.get("status", "not run") if result else "not run"
            rows.append((name, str(per_gpu or "-"), str(arm["concurrency"]), status, *["-"] * (len(header) - 4)))
            continue
        picked = [by_arm[name][k] for k in common] if common else list(by_arm[name].values())
        mean = {m: sum(t[m] for t in picked) / len(picked) if picked else math.nan for m in ("ari", "silhouette")}
        gpu = result.get("gpu", {})
        rows.append(
            (
                name,
                str(per_gpu or "-"),
                str(arm["concurrency"]),
                str(result["done"]),
                result["stopped_by"],
                number(result["window_s"], 1),
                number(result["trials_per_min"], 2),
                f"{result['trials_per_min'] / reference:.2f}x" if reference and not math.isnan(reference) else "-",
                number(result["trial_s"], 1),
                number(gpu.get("util_mean"), 0),
                number(gpu.get("util_max"), 0),
                number(gpu.get("memory_peak"), 0),
                number(mean["ari"], 4),
                number(mean["silhouette"], 4),
                str(result.get("replica_trials", "-")),
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("\n" + "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths))))
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    scope = f"the {len(common)} configurations every arm finished" if common else "each arm's own trials (no configuration finished in every arm)"
    print(
        f"wall s: from Tuner.fit's start to the last trial's completion; trials/min over that window; "
        f"trial s: mean training + clustering per trial; mean ARI/silhouette over {scope}"
    )
    other = next((name for name in ("gpu-1", "cpu") if name in by_arm), None)
    for name in by_arm:
        if other and name != other:
            n, ari = largest_difference(by_arm[name], by_arm[other], "ari")
            _, sil = largest_difference(by_arm[name], by_arm[other], "silhouette")
            print(f"  {name} vs {other}: {n} configurations in both, largest |ΔARI| {number(ari, 4)}, largest |Δsilhouette| {number(sil, 4)}")
    alone, together = results.get("gpu-1-alone", {}), results.get("gpu-1", {})
    if alone.get("trials_per_min") and together.get("trials_per_min"):
        print(f"seeds trained together (gpu-1) against each alone (gpu-1-alone): {together['trials_per_min'] / alone['trials_per_min']:.2f}x trials/min")
    for arm in arms:
        result = results.get(arm["name"], {})
        print(f"gpu throughput: {arm['name']} {number(result.get('trials_per_min'), 2) if result.get('done') is not None else result.get('status', 'not run')}")
    sys.stdout.flush()


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, help="a features table (e.g. ../shared/data/fma5_seed_mfcc40.csv) instead of the demo collection")
    parser.add_argument("--per-genre", type=int, help="demo collection: clips per genre (default: the sweep file's, 50; --cpu-smoke: 10)")
    parser.add_argument("--models", nargs="+", help="default: the sweep file's variational models (demo: vae conv_vae; table: vae multimodal_vae)")
    parser.add_argument("--betas", type=float, nargs="+", help="default: the sweep file's (0.5 1 4 10)")
    parser.add_argument("--seeds", type=int, help="seeds 0 .. N-1 (default: the sweep file's, 3)")
    parser.add_argument("--epochs", type=int, help="default: the sweep file's (30)")
    parser.add_argument("--trials", type=int, help="trials per arm at most (default: the whole grid)")
    parser.add_argument("--packings", type=int, nargs="+", default=list(PACKINGS), help="trials per GPU, one GPU arm each (default: 1 2 4 8)")
    parser.add_argument("--cpu-concurrency", type=int, default=8, help="the CPU arm's trials at a time (at most the CPU count; default 8)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--no-cpu", action="store_true", help="leave out the CPU arm")
    parser.add_argument("--no-alone", action="store_true", help="leave out gpu-1-alone (gpu-1 with trials.replicas: false)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="seconds for all arms together, after the start-up (default 480)")
    parser.add_argument("--cpu-smoke", action="store_true", help="no GPU needed: the CPU arm alone, 2 trials of 2 epochs on a tiny demo collection")
    parser.add_argument("--json", type=Path, help="also write every arm's figures and trials here")
    parser.add_argument("--verbose", action="store_true", help="show the sweeps' own output instead of logging it to the temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs, Tune results, MLflow stores)")
    args = parser.parse_args()
    if args.cpu_smoke:
        args.models, args.betas, args.seeds, args.epochs, args.trials = args.models or ["vae"], args.betas or [1.0], 2, 2, 2
        args.per_genre = args.per_genre or 10
        args.cpu_concurrency = min(args.cpu_concurrency, 2)
    return args


def progress_line(arm: dict[str, Any], result: dict[str, Any]) -> str:
    gpu = result["gpu"]
    line = (
        f"{arm['name']}: {result['done']} trials done ({result['stopped']} stopped by the time slice, {result['failed']} failed), "
        f"stopped by {result['stopped_by']}; {number(result['trials_per_min'], 2)} trials/min over {number(result['window_s'], 1)} s; "
        f"first done after {number(result['first_done_s'], 0)} s, mean trial {number(result['trial_s'], 1)} s; "
        f"fit {result['fit_s']:.1f} s, whole sweep {result['total_s']:.1f} s"
    )
    if gpu:
        line += f"; GPU util mean {number(gpu['util_mean'], 0)} %, max {number(gpu['util_max'], 0)} %, peak {number(gpu['memory_peak'], 0)} MiB"
    if result["failed"]:
        line += f"\n{arm['name']}: WARNING: first failure: {result['first_error']}"
    return line


def measure(arm: dict[str, Any], raw: dict[str, Any], folder: Path, log: Path, gpu_device: str | None, quiet: bool) -> dict[str, Any]:
    """One arm, GPU sampled while it runs; the working directory is the arm's folder (MLflow's default artifact root, ./mlruns, lands there)."""
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        with GPUSampler(gpu_device) if gpu_device else contextlib.nullcontext() as sampler:
            result, _ = run_arm(arm["name"], log, quiet, run_one, arm, raw)
    finally:
        os.chdir(cwd)
    result["gpu"] = sampler.summary() if gpu_device else {}
    result["stopped_by"] = "trials" if result["done"] + result["failed"] >= arm["trials"] else f"time {arm['slice']:.0f} s"
    return result


def run_arms(args: argparse.Namespace, arms: list, setting: dict[str, Any], root: Path, gpu_device: str | None) -> dict[str, dict[str, Any]]:
    """Every arm in turn, each given an equal share of what is left of the budget; a progress line as each ends."""
    results: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + args.budget_s
    watchdog = threading.Timer(args.budget_s + GRACE_S, lambda: _thread.interrupt_main(signal.SIGINT))
    watchdog.daemon = True
    watchdog.start()
    overheads: list[float] = []
    try:
        for i, arm in enumerate(arms):
            left = len(arms) - i
            overhead = max(overheads, default=DEFAULT_OVERHEAD_S)
            arm["slice"] = round((deadline - time.monotonic() - overhead * left) / left, 1)
            if arm["slice"] < MIN_SLICE_S:
                results[arm["name"]] = {"status": "not run (budget spent)"}
                print(f"{arm['name']}: not run, {deadline - time.monotonic():.0f} s of the budget left", flush=True)
                continue
            folder = root / arm["name"]
            folder.mkdir()
            raw = sweep_file(arm, folder=folder, **setting)
            idle = GPUSampler(gpu_device).read() if gpu_device else None
            print(
                f"{arm['name']}: {arm['concurrency']} at a time, {arm['gpus']:g} GPU each, device {arm['device']}; "
                f"at most {arm['trials']} trials or {arm['slice']:.0f} s" + (f"; GPU idle: {idle[0]:.0f} % used, {idle[1]:.0f} MiB" if idle else ""),
                flush=True,
            )
            try:
                result = measure(arm, raw, folder, root / f"{arm['name']}.log", gpu_device, not args.verbose)
            except KeyboardInterrupt:
                results[arm["name"]] = {"status": "interrupted (budget)"}
                print(f"{arm['name']}: interrupted, {GRACE_S:.0f} s past the budget", flush=True)
                break
            except Exception as exc:  # noqa: BLE001 - one arm's failure must not lose the others
                results[arm["name"]] = {"status": "failed"}
                print(f"{arm['name']}: FAILED: {type(exc).__name__}: {exc}", flush=True)
                continue
            fit = result["total_s"] - DEFAULT_OVERHEAD_S if math.isnan(result["fit_s"]) else result["fit_s"]
            overheads.append(result["total_s"] - min(fit, arm["slice"]))
            results[arm["name"]] = result
            print(progress_line(arm, result), flush=True)
    finally:
        watchdog.cancel()
    print(f"\nArms took {args.budget_s - (deadline - time.monotonic()):.0f} s of the {args.budget_s:.0f} s budget ({load()})")
    return results


def main() -> None:
    args = parse_args()
    if not args.cpu_smoke and (reason := no_gpu_reason()):
        print(f"bench/gpu.py needs a CUDA GPU; this machine has none ({reason}); --cpu-smoke runs the CPU arm alone", file=sys.stderr)
        sys.exit(2)
    if args.table and not args.table.is_file():
        raise SystemExit(f"no features table at {args.table}")
    gpu_device = None if args.cpu_smoke else pin_one_gpu()
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)  # Ray's workers import musicvae too

    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="gpub-"))  # short: Ray's socket paths live under it
    (root / "ray").mkdir()
    os.environ["RAY_TMPDIR"] = str(root / "ray")
    try:
        raw_base, base = base_file(args)
        data, space, points = grid(args, raw_base, base)
        arms = arms_to_run(args, len(points))

        import musicvae.ray_session
        from musicvae.config.sweep_file import parse_sweep
        from musicvae.data.dataset import load_feature_set

        imports_s = time.perf_counter() - began
        cache = root / "cache"
        started = time.perf_counter()
        with output_to(root / "setup.log", not args.verbose):
            musicvae.ray_session.init_ray()  # one local Ray for every arm: run_sweep leaves a Ray it did not start running
            features = load_feature_set(parse_sweep({"name": "x", "data": {**data, "cache_dir": str(cache)}}).data)
        extract_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = subprocess.run([sys.executable, "-c", WARM_UP, "cpu" if args.cpu_smoke else "cuda"], capture_output=True, text=True, timeout=300)
        if warm.returncode:
            raise SystemExit(f"the warm-up process failed:\n{warm.stderr[-3000:]}")
        warm_s = time.perf_counter() - started
        print(
            f"{os.cpu_count()} CPUs; GPU {gpu_device + ', sampled with ' + GPUSampler(gpu_device).source if gpu_device else '(none: --cpu-smoke)'}\n"
            f"Grid: {' '.join(space['model'])} x β {' '.join(f'{b:g}' for b in space['beta'])} x {len(space['seed'])} seed(s), "
            f"{space['epochs']} epochs, K-Means: {len(points)} configurations; each arm runs at most {arms[0]['trials'] if arms else 0} of them "
            f"(interleaved: seed, β, model), {args.cpus_per_trial:g} CPU per trial, no per-trial figures\n"
            f"Data: {features.summary.splitlines()[0]}\n"
            f"Start-up, not timed: imports {imports_s:.1f} s, Ray + features {extract_s:.1f} s, warm-up process {warm_s:.1f} s\n"
            f"Budget: {args.budget_s:.0f} s for {len(arms)} arm(s) ({', '.join(a['name'] for a in arms)}); temp folder {root}",
            flush=True,
        )
        metric = raw_base["search"].get("metric", "silhouette")
        setting = {"data": data, "space": space, "points": points, "metric": metric, "cache": cache}
        results = run_arms(args, arms, setting, root, gpu_device)
        print_table(arms, results)
        if args.json:
            args.json.write_text(json.dumps({"arms": arms, "results": results}, indent=1, default=str))
    finally:
        import ray

        ray.shutdown()
        if args.keep:
            print(f"Kept {root} (setup.log and one log per arm, each arm's ray_results and mlflow.db)")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
