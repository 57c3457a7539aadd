"""Training throughput: what musicvae's training costs against bare PyTorch, measured side by side in one process.

Sections (--sections, all by default):

  per-step  milliseconds per optimizer step of the MLP VAE, the Conv-VAE and the
            multimodal VAE at a sweep's sizes: the hard task's 2996 tracks, latent 32
            and TrialParams' defaults otherwise (hidden sizes, channels, batch size, lr,
            validation split), on random inputs of the real shapes (40 MFCC statistics,
            20 x 128 MFCC spectrograms, 384-D text embeddings, a quarter of the tracks
            without text). Two arms train each model from the same initial weights:
              (a) floor: the same nn.Module in a plain PyTorch loop: forward, the same
                  loss written out in torch, backward, a torch.optim.Adam step (torch's
                  defaults), over the same batches in the same order; no validation and
                  no musicvae code but the model;
              (b) musicvae.training.loop.train_model as a sweep trial calls it
                  (musicvae.trial.embed): with its per-epoch validation pass and a
                  checkpoint snapshot every trials.checkpoint_every epochs and at the last.
                  The on_epoch callback does nothing: Tune's report and the checkpoint's
                  file are the sweep's costs, measured by bench/sweep_overhead.py.
              (c) three seeds trained together as one vectorised model
                  (musicvae.training.loop.train_replicas, as a grid's first trial of a model
                  trains them), its time divided by all three replicas' steps: one
                  replica's share of a step. Models that do not vectorise (the Conv-VAE)
                  have no such arm.
            and, for reference, (a) with fused Adam (faster on CPU, but it rounds
            differently, so train_model keeps torch's default: see its comment), so
            the table shows what the optimizer would buy and what the loop costs. Prints one
            table, then ``per-step ratio: <model> <b/a>`` per model and the same for (c)
            (goal: at most 1.5).

  sweep     sweeps/hard.yaml run whole (musicvae.tune.sweep.run_sweep: features, 99 trials, selection,
            figures) by three arms in one run of this script: (a) --baseline, a git revision
            checked out into a temporary worktree (default d9e8279, the code issue 16 measured:
            99 trials in 388 s then), (b) this tree with trials.replicas: false (each seed's trial
            trains its own model), (c) this tree as it runs by default (a model's seeds trained
            together). Each arm runs in its own process (PYTHONPATH = its tree, so Ray's workers
            import that tree too), one after the other, with private storage, tracking store and
            cache (a cold cache: the text embeddings and features are computed in every arm).
            Before them, untimed, this tree runs one small UMAP: numba's on-disk cache of UMAP's
            compiled code (musicvae.clustering.manifold.import_umap) is then warm, as it is for every sweep on
            a machine after its first; the baseline has no such cache. Prints each arm's wall time,
            trials per minute, where the time went (musicvae's own steps, wrapped for the run: the
            features, the trials, the selection, the figures after the sweep) and the driver
            process's CPU seconds, the ratios c / a (goal: at most 0.5) and c / b (what training
            seeds together adds), and, against (a) and against (b), the largest difference of a
            method's mean ARI, NMI and silhouette, with how many methods differ by more than their
            seed spread. About 20 minutes on 2 cores; needs ../shared/data (the FMA table). Not run
            by default.

A section is a function in SECTIONS taking the parsed arguments.

Measurement. One thread by default, as a sweep trial runs (cpus_per_trial = 1, so
torch.set_num_threads(1)); --threads N for more. Each run trains a fresh model for
--epochs epochs; the arms are interleaved, in alternating order, --repeats times, after
an untimed warm-up run of each, and a step's time is the median over repeats of a run's
time divided by its optimizer steps. Both the wall time and the process CPU time are
taken. The ratio lines use CPU time by default (--clock): on a shared machine the wall
time of a single-threaded run stretches with the other work (here it was twice the CPU
time at a load of 9 on 2 cores) while its CPU time stays the work itself. With
--threads > 1 CPU time sums the threads, their spin-waits included: use --clock wall on
an idle machine. The load average is printed before and after.

    python bench/throughput.py                          # per-step, every model, single thread (minutes: the Conv-VAE's ~0.1 s steps)
    python bench/throughput.py --sections sweep         # the hard sweep: d9e8279, this tree without and with replicas
    python bench/throughput.py --models vae --repeats 9
    python bench/throughput.py --threads 2 --clock wall
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import ROOT  # noqa: E402

from musicvae.config.params import TrialParams  # noqa: E402
from musicvae.config.sections import TrialsConfig  # noqa: E402
from musicvae.models import build_model  # noqa: E402
from musicvae.models.vae import elbo  # noqa: E402
from musicvae.training.loop import batch_sizes, seed_everything, train_model, train_replicas  # noqa: E402
from musicvae.training.replicas import exact, noise_state, vectorises  # noqa: E402
from musicvae.training.tensors import Tensors

GOAL = 1.5
CLOCKS = ("wall", "cpu")  # the order of a measurement's pair
MODELS = ("vae", "conv_vae", "multimodal_vae")
SHAPES = {"features": (40,), "spectrogram": (20, 128), "text": (384,)}  # per track, as the hard task's feature set has them
CPU = torch.device("cpu")


def synthetic_inputs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays of a sweep's shapes, every model's keys (a model trains on its ``inputs``)."""
    rng = np.random.default_rng(seed)
    inputs = {key: rng.standard_normal((n, *shape), dtype=np.float32) for key, shape in SHAPES.items()}
    inputs["text_mask"] = (rng.random(n) >= 0.25).astype(np.float32)
    return inputs


# ------------------------------------------------------------------ per-step


def bare_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], beta: float) -> torch.Tensor:
    """``elbo``'s loss, written out: reconstruction + β·KL(q || N(0, I)), batch means, plus the multimodal VAE's subsets."""

    def reconstruction_and_kl(b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(b)
        kl = -0.5 * (1 + out.logvar - out.mu.pow(2) - out.logvar.exp())
        return model.reconstruction(b, out).mean(), kl.mean(dim=0).sum()

    reconstruction, kl = reconstruction_and_kl(batch)
    loss = reconstruction + beta * kl
    for subset in model.subsets(batch) if hasattr(model, "subsets") else []:
        reconstruction, kl = reconstruction_and_kl(subset)
        loss = loss + reconstruction + beta * kl
    return loss


def floor(model: torch.nn.Module, inputs: dict[str, np.ndarray], params: TrialParams, fused: bool | None = None) -> int:
    """(a): a plain loop over train_model's batches (the same split, the same order each epoch); returns its steps."""
    data = {key: torch.as_tensor(a) for key, a in inputs.items()}
    n = len(next(iter(inputs.values())))
    train = torch.as_tensor(np.random.default_rng(params.seed).permutation(n)[int(round(n * params.val_fraction)) :])
    generator = torch.Generator().manual_seed(params.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr, fused=fused)
    model.train()
    steps = 0
    for _ in range(params.epochs):
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order), params.batch_size):
            part = order[start : start + params.batch_size]
            loss = bare_loss(model, {key: t[part] for key, t in data.items()}, params.beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
    return steps


def sweep_training(model: torch.nn.Module, inputs: dict[str, np.ndarray], params: TrialParams) -> int:
    """(b): train_model with the arguments musicvae.trial.embed gives it; returns its steps."""
    settings = {key: getattr(params, key) for key in ("beta", "kl_warmup_epochs", "free_bits", "epochs", "lr", "batch_size", "val_fraction", "seed")}
    checkpoint_every = TrialsConfig().checkpoint_every  # the sweep's default: a snapshot every 10 epochs and at the last
    history = train_model(model, inputs, **settings, device=CPU, checkpoint_every=checkpoint_every, on_epoch=lambda stats, state: None)
    n = len(next(iter(inputs.values())))
    return len(history) * math.ceil((n - int(round(n * params.val_fraction))) / params.batch_size)


def replica_training(model: torch.nn.Module, inputs: dict[str, np.ndarray], params: TrialParams, replicas: int = 3) -> int:
    """(c): ``replicas`` seeds (``params.seed`` and the next ones) trained together by train_replicas, as a grid's first trial
    trains them (musicvae.training.trained_models); returns the steps of all replicas, so a step's time is one replica's share.
    ``model`` (the first seed's) is used as it is; the others are built as musicvae.training.trained_models builds them."""
    seeds = [params.seed + i for i in range(replicas)]
    models, noise = [model], [noise_state(CPU)]
    for seed in seeds[1:]:
        seed_everything(seed)
        models.append(build_model(params.model_copy(update={"seed": seed}), inputs))
        noise.append(noise_state(CPU))
    settings = {key: getattr(params, key) for key in ("beta", "kl_warmup_epochs", "free_bits", "epochs", "lr", "batch_size", "val_fraction")}
    outcomes = train_replicas(models, inputs, seeds=seeds, noise=noise, **settings, device=CPU, checkpoint_every=TrialsConfig().checkpoint_every)
    n = len(next(iter(inputs.values())))
    return sum(len(o.history) for o in outcomes) * math.ceil((n - int(round(n * params.val_fraction))) / params.batch_size)


ARMS: dict[str, Callable[[torch.nn.Module, dict[str, np.ndarray], TrialParams], int]] = {
    "floor": floor,
    "train_model": sweep_training,
    "floor, fused Adam": lambda model, inputs, params: floor(model, inputs, params, fused=True),
    "3 replicas, per seed": replica_training,
}


def check_same_loss(model: torch.nn.Module, inputs: dict[str, np.ndarray], beta: float) -> None:
    """The floor's loss is elbo's to the bit (the same sampling noise, from the same seed), or the comparison is void."""
    batch = {key: torch.as_tensor(a[:64]) for key, a in inputs.items()}
    torch.manual_seed(0)
    bare = bare_loss(model, batch, beta)
    torch.manual_seed(0)
    if not torch.equal(bare, elbo(model, batch, beta).loss):
        raise SystemExit(f"{type(model).__name__}: the floor's loss is not elbo's; fix bare_loss before trusting the ratios")


def per_step(args: argparse.Namespace) -> None:
    all_inputs = synthetic_inputs(args.tracks)
    rows = []
    for name in args.models:
        params = TrialParams(model=name, latent_dim=32, epochs=args.epochs)

        def fresh() -> torch.nn.Module:
            seed_everything(params.seed)
            return build_model(params, all_inputs)

        inputs = {key: all_inputs[key] for key in fresh().inputs}
        check_same_loss(fresh(), inputs, params.beta)
        sizes = batch_sizes(args.tracks, params.val_fraction, params.batch_size)
        together = vectorises(fresh()) and exact([fresh(), fresh(), fresh()], Tensors(inputs, CPU), sizes, params.beta, params.free_bits, CPU)
        arms = [arm for arm in ARMS if arm != "3 replicas, per seed" or together]
        times: dict[str, list[tuple[float, float]]] = {arm: [] for arm in arms}
        model_steps: dict[str, int] = {}
        for repeat in range(-1, args.repeats):  # -1: the warm-up, not recorded
            for arm in arms if repeat % 2 == 0 else arms[::-1]:
                model = fresh()
                wall, cpu = time.perf_counter(), time.process_time()
                steps = ARMS[arm](model, inputs, params)
                model_steps[arm] = steps
                if repeat >= 0:
                    times[arm].append(((time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps))
        medians = {arm: [1e3 * statistics.median(t[i] for t in times[arm]) for i in (0, 1)] for arm in arms}
        rows.append((name, model_steps["floor"], medians))
        print(f"  {name}: done ({model_steps['floor']} steps a run of one model)", flush=True)

    print(f"\nms per optimizer step, median of {args.repeats} runs of {args.epochs} epochs x {args.tracks} tracks; x floor: the arm's time / (a)'s")
    print(f"{'model':<16}{'steps':>6}  {'arm':<20}{'wall ms':>9}{'cpu ms':>9}{'x floor':>9}{'(cpu)':>7}")
    for name, steps, m in rows:
        (floor_wall, floor_cpu) = m["floor"]
        for i, (arm, (wall, cpu)) in enumerate(m.items()):
            lead = f"{name:<16}{steps:>6}" if i == 0 else " " * 22
            print(f"{lead}  {arm:<20}{wall:>9.2f}{cpu:>9.2f}{wall / floor_wall:>9.2f}{cpu / floor_cpu:>7.2f}")
    print()
    clock = CLOCKS.index(args.clock)
    for name, _, m in rows:
        print(f"per-step ratio: {name} {m['train_model'][clock] / m['floor'][clock]:.2f} ({args.clock} time; goal: at most {GOAL})")
        replica = m.get("3 replicas, per seed")
        shown = f"{replica[clock] / m['floor'][clock]:.2f}" if replica else "n/a (does not vectorise exactly: trains one seed at a time)"
        print(f"per-step ratio, one of 3 replicas: {name} {shown} ({args.clock} time; goal: at most {GOAL})")


# ------------------------------------------------------------------- sweep

SWEEP_METRICS = ("ari", "nmi", "silhouette")
FMA_TABLE = Path(os.environ.get("MUSICVAE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "fma5_seed_mfcc40.csv"


def sweep_section(args: argparse.Namespace) -> None:
    import json
    import subprocess
    import tempfile

    import pandas as pd

    if not FMA_TABLE.exists():
        raise SystemExit(f"the sweep section needs the FMA table at {FMA_TABLE} (../shared/data, or MUSICVAE_SHARED_DATA)")
    scratch = Path(tempfile.mkdtemp(prefix="throughput-arms-"))
    baseline = scratch / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline], check=True, capture_output=True)
    warm = "import numpy as np; from musicvae.clustering.manifold import import_umap; import_umap().UMAP(random_state=0).fit(np.random.rand(300, 8))"
    subprocess.run([sys.executable, "-c", warm], env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, capture_output=True)
    arms = {f"(a) {args.baseline}": (baseline, []), "(b) replicas off": (ROOT, ["--no-replicas"]), "(c) this tree": (ROOT, [])}
    results = {}
    try:
        for label, (tree, options) in arms.items():
            out = scratch / label.split()[0].strip("()")
            print(f"  {label}: running sweeps/hard.yaml (load average {os.getloadavg()[0]:.2f})", flush=True)
            env = {**os.environ, "PYTHONPATH": str(tree)}
            arm = [sys.executable, str(Path(__file__).with_name("sweep_arm.py")), str(tree), str(FMA_TABLE), str(out), *options]
            # cwd = the tree as well: Ray's workers put the driver's working directory first on their path.
            subprocess.run(arm, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
            results[label] = (json.loads((out / "timing.json").read_text()), pd.read_csv(out / "methods.csv"))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], capture_output=True)
    names = ["features", "trials", "selection", "figures after"]
    print(f"\n{'arm':<22}{'wall s':>8}{'trials/min':>12}" + "".join(f"{n:>15}" for n in names) + f"{'other':>8}{'driver cpu':>12}")
    for label, (timing, _) in results.items():
        phases = timing["phases"]
        other = phases["wall"] - sum(phases.get(n, 0.0) for n in names)
        cells = "".join(f"{phases[n]:>15.1f}" if n in phases else f"{'-':>15}" for n in names)  # '-': not a step of that tree
        driver = f"{phases['driver cpu']:>12.1f}" if "driver cpu" in phases else f"{'-':>12}"
        print(f"{label:<22}{phases['wall']:>8.1f}{timing['trials'] / phases['wall'] * 60:>12.1f}{cells}{other:>8.1f}{driver}")
    (timing_a, methods_a), (timing_b, methods_b), (timing_c, methods_c) = results.values()
    print(f"\nwall-time ratio c / a: {timing_c['phases']['wall'] / timing_a['phases']['wall']:.2f} (goal: at most 0.5)")
    print(f"wall-time ratio c / b: {timing_c['phases']['wall'] / timing_b['phases']['wall']:.2f} (seeds trained together against each seed alone)")
    for name, reference in (("a", methods_a), ("b", methods_b)):
        both = reference.merge(methods_c, on="method", suffixes=("_ref", "_c"))
        for metric in SWEEP_METRICS:
            difference = (both[f"{metric}_mean_c"] - both[f"{metric}_mean_ref"]).abs()
            outside = both["method"][difference > both[f"{metric}_std_ref"].fillna(0.0) + 1e-12].tolist()
            largest = f"largest |difference| of a method's mean {metric}: {difference.max():.2g}"
            print(f"c against {name}: {largest}; {len(outside)} of {len(both)} methods beyond its seed spread" + (f": {', '.join(outside)}" if outside else ""))


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"per-step": per_step, "sweep": sweep_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["per-step"], choices=SECTIONS)
    parser.add_argument("--baseline", default="d9e8279", help="sweep: the git revision of arm (a)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--tracks", type=int, default=2996, help="tracks in the synthetic feature set (the hard task's FMA 5-genre set)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs a timed run trains")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each arm (the median is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a sweep trial has cpus_per_trial of them, 1 by default)")
    parser.add_argument(
        "--clock", choices=CLOCKS, default="cpu", help="the time the ratio lines use (see Measurement; wall on an idle machine or with --threads > 1)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    for section in args.sections:
        print(f"\n## {section}\n", flush=True)
        SECTIONS[section](args)
    print(f"\nload average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
