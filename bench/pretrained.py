"""MFCC statistics against musicnn's pretrained features, on real recordings: methods over seeds, and what extraction costs.

For each collection it extracts MFCC statistics (20 MFCCs, mean and std over
the clip) and musicnn's features (the MSD and MTT models' 753-d mean-pooled
layer, averaged over a clip's 3 s patches) into the feature store, then runs
every method below on each input over ``--seeds`` seeds, exactly as a sweep's
trials run them (``musicvae.trial.embed`` once per model and seed, then
``musicvae.trial.evaluate`` per clusterer; k = the number of labels). It
prints per input and method the mean ± std over seeds of ARI, NMI and purity
(against the labels: evaluation only), the stability (the lower of the seeds'
agreement and the resampled-clustering ARI, as selection computes it) and
the seconds of a trial; then what the default label-free selection picks
among all of them, its regret against the oracle, and every rule's pick.

Collections:
  mridangam-stroke  2,879 real mridangam strokes (../shared/data/mridangam), labelled by stroke (9 classes)
  mridangam-tonic   the same recordings labelled by tonic (6 classes): another grouping of the same audio
  fma-clips         the ten real fma_small clips (3 Hip-Hop, 7 Rock), 30 s each: too few tracks for a VAE
                    to mean much, shown as the smallest real music case
  folder:DIR        any folder of audio in the folder layout <DIR>/<label>/*.{wav,mp3,ogg,flac}

The extraction table times, in one process on one core, side by side on the
same files: decoding and the MFCC statistics, and musicnn (decode, log-mel,
the network for both models), in seconds per track; on a GPU, with --device
cuda, the network runs there.

    python bench/pretrained.py                                     # every collection, 5 seeds (about 40 minutes on 2 cores, cold)
    python bench/pretrained.py --collections fma-clips --seeds 3
    python bench/pretrained.py --collections folder:/data/my-genres --duration 10
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from _common import ROOT, SHARED, one_thread_per_worker  # noqa: E402

from musicvae.config.sections import DataConfig, SelectionConfig  # noqa: E402
from musicvae.config.sweep_file import parse_sweep  # noqa: E402

COLLECTIONS = ("mridangam-stroke", "mridangam-tonic", "fma-clips")
INPUTS = ("mfcc", "musicnn_msd", "musicnn_mtt")
VAE = {"model": "vae", "beta": 0.5, "latent_dim": 16, "epochs": 100}
UMAP = {"manifold": "umap", "manifold_dim": 10, "manifold_neighbors": 30, "manifold_min_dist": 0.0}
# (name, model parameters, [(clusterer name, clusterer parameters)]): per input
METHODS = [
    ("raw", {"model": "raw"}, [("kmeans", {}), ("N2D: UMAP + kmeans", UMAP)]),
    ("pca 16", {"model": "pca", "latent_dim": 16}, [("kmeans", {})]),
    ("vae β=0.5", VAE, [("kmeans", {}), ("N2D: UMAP + kmeans", UMAP), ("idec", {"clusterer": "idec"})]),
    ("vae β=4", {**VAE, "beta": 4.0}, [("kmeans", {})]),
]
MIN_TRACKS = {"vae": 50, "umap": 60}  # below these a VAE or a UMAP stage means nothing (fma-clips has 10 tracks)


def data_config(name: str, cache: Path, duration: float | None) -> DataConfig:
    audio = {"features": ["mfcc", "musicnn"], "duration": duration, "n_mfcc": 20, "stats": "mean_std", "musicnn": {"models": ["MSD", "MTT"]}}
    if name.startswith("mridangam"):
        label = name.split("-")[1]
        source = {"kind": "manifest", "path": str(SHARED / "mridangam" / "labels.csv"), "label_column": label, "id_column": "freesound_id"}
        source["text_columns"] = []
    elif name == "fma-clips":
        manifest = cache / "fma-clips.csv"
        labels = pd.read_csv(SHARED / "fma_small_clips" / "labels.csv")
        labels["path"] = [str(SHARED / "fma_small_clips" / "fma_small" / "000" / f"{t:06d}.mp3") for t in labels["track_id"]]
        manifest.parent.mkdir(parents=True, exist_ok=True)
        labels.to_csv(manifest, index=False)
        source = {"kind": "manifest", "path": str(manifest), "label_column": "genre", "id_column": "track_id", "text_columns": []}
    elif name.startswith("folder:"):
        source = {"kind": "folder", "root": name.split(":", 1)[1]}
    else:
        raise SystemExit(f"unknown collection '{name}' (known: {', '.join(COLLECTIONS)}, folder:DIR)")
    return parse_sweep({"name": "x", "data": {"source": source, "audio": audio, "cache_dir": str(cache / "store")}}).data


_DATA = None


def _init(data) -> None:
    global _DATA
    _DATA = data
    one_thread_per_worker()


def run(input_name: str, method: int, seed: int, cache: Path) -> list[dict]:
    """One model of one input and seed: trained once, then each way of clustering it (a sweep's trials of that model and seed)."""
    from musicvae.config.params import TrialParams
    from musicvae.trial import embed, evaluate

    name, model, clusterers = METHODS[method]
    n = len(_DATA.track_ids)
    if model["model"] == "vae" and n < MIN_TRACKS["vae"]:
        return []
    start = time.perf_counter()
    embedded = embed(TrialParams(**model, input=input_name, seed=seed), _DATA)
    fit = time.perf_counter() - start
    rows = []
    for clusterer, options in clusterers:
        if options.get("manifold") == "umap" and n < MIN_TRACKS["umap"]:
            continue
        params = TrialParams(**model, **options, input=input_name, seed=seed)
        start = time.perf_counter()
        result = evaluate(params, _DATA, embedded, cache_dir=cache / "manifolds")
        metrics = {**result.metrics, "trial_seconds": fit + time.perf_counter() - start}
        method_name = f"{name} + {clusterer}"
        rows.append({"input": input_name, "method": method_name, "seed": seed, "params": params.model_dump(), "clusters": result.clusters, **metrics})
        rows[-1]["embedding"] = embedded.embedding
    return rows


def method_table(rows: list[dict]) -> pd.DataFrame:
    from musicvae.clustering.clusterers import mean_pairwise_ari

    table = pd.DataFrame(rows)
    out = []
    for (input_name, method), group in table.groupby(["input", "method"], sort=False):
        row = {"input": input_name, "method": method, "n": len(group)}
        for metric in ("ari", "nmi", "purity"):
            row[metric] = f"{group[metric].mean():.3f} ± {group[metric].std(ddof=1):.3f}"
        row["stability"] = min(mean_pairwise_ari(list(group["clusters"])), group["resample_stability"].mean())
        row["seconds"] = group["trial_seconds"].mean()
        out.append(row)
    return pd.DataFrame(out)


def selection_lines(rows: list[dict]) -> list[str]:
    """The default label-free rule over every method of every input, as a sweep would choose."""
    from musicvae.config.params import applies
    from musicvae.evaluation.leaderboard import TrialRecord, trial_table
    from musicvae.evaluation.selection import select_methods

    records, clusters, embeddings = [], {}, {}
    for i, row in enumerate(rows):
        trial = f"t{i:04d}"
        shown = ("input", "model", "beta", "clusterer", "manifold", "seed")
        records.append(TrialRecord(trial, "OK", {k: v for k, v in row["params"].items() if k in shown and applies(k, row["params"])}, row))
        clusters[trial], embeddings[trial] = row["clusters"], row["embedding"]
    selection = select_methods(trial_table(records, "silhouette", "max"), clusters, embeddings, _DATA.inputs, SelectionConfig())
    lines = [selection.summary()]
    scores = selection.scores.set_index("method")
    lines.append(
        f"selection regret: {selection.regret(selection.winner):.4f}; picked NMI {scores.loc[selection.winner, 'nmi']:.3f}, oracle NMI "
        f"{scores['nmi'].max():.3f}"
    )
    return lines


def extraction_costs(data_cfg: DataConfig, files: list[str], device: str) -> pd.DataFrame:
    """Seconds per track, one process on one core, side by side on the same files: MFCC statistics, and musicnn (both models)."""
    import torch

    from musicvae.data.features.audio import PATCHES, extract_file, musicnn_features
    from musicvae.data.features.extract import musicnn_weights

    torch.set_num_threads(1)
    mfcc_cfg = data_cfg.audio.model_copy(update={"features": ["mfcc"]})
    weights = musicnn_weights(data_cfg.audio, data_cfg.cache_dir)
    timings = {"decode + MFCC statistics": 0.0, "decode + musicnn input (16 kHz log-mel patches)": 0.0, f"musicnn network, MSD + MTT ({device})": 0.0}
    for path in files:  # read once first: the page cache, not the disk, feeds both timed passes
        Path(path).read_bytes()
    patches = []
    for path in files:
        start = time.perf_counter()
        extract_file(path, mfcc_cfg)
        timings["decode + MFCC statistics"] += time.perf_counter() - start
        start = time.perf_counter()
        patches.append(extract_file(path, data_cfg.audio)[PATCHES])
        timings["decode + musicnn input (16 kHz log-mel patches)"] += time.perf_counter() - start
    musicnn_features(patches[:1], data_cfg.audio, weights, device)  # load the networks once, as a worker does
    start = time.perf_counter()
    musicnn_features(patches, data_cfg.audio, weights, device)
    timings[f"musicnn network, MSD + MTT ({device})"] = time.perf_counter() - start
    per_track = {step: seconds / len(files) for step, seconds in timings.items()}
    mfcc = per_track["decode + MFCC statistics"]
    musicnn_total = sum(v for k, v in per_track.items() if k != "decode + MFCC statistics")
    rows = [{"step": step, "seconds per track": seconds} for step, seconds in per_track.items()]
    rows.append({"step": "musicnn in all (decode + input + network)", "seconds per track": musicnn_total})
    table = pd.DataFrame(rows)
    table["x MFCC"] = table["seconds per track"] / mfcc
    table.attrs["patches"] = sum(len(p) for p in patches)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duration", type=float, help="seconds decoded per clip (default: the whole file)")
    parser.add_argument("--timed-files", type=int, default=200, help="files the extraction table times (a seeded sample)")
    parser.add_argument("--device", default="cpu", help="where the extraction table runs the network (cuda on a GPU)")
    parser.add_argument("--cache", type=Path, default=ROOT / ".musicvae" / "bench" / "pretrained")
    args = parser.parse_args()
    if not SHARED.exists() and not all(c.startswith("folder:") for c in args.collections):
        raise SystemExit(f"needs the shared data at {SHARED} (set MUSICVAE_SHARED_DATA)")
    import ray

    from musicvae.data.dataset import load_feature_set
    from musicvae.data.sources import list_tracks

    for name in args.collections:
        data_cfg = data_config(name, args.cache, args.duration)
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)  # the extraction (Ray Data)
        start = time.perf_counter()
        data = load_feature_set(data_cfg)
        ray.shutdown()
        print(f"\n## {name}: {len(data.track_ids)} tracks, {len(data.label_names)} labels; features ready in {time.perf_counter() - start:.0f} s")
        print(data.summary.split("\n", 1)[-1])

        tracks = list_tracks(data_cfg.source, data_cfg.cache_dir)
        sample = tracks.sample(min(args.timed_files, len(tracks)), random_state=0)["path"].tolist()
        costs = extraction_costs(data_cfg, sample, args.device)
        print(f"\nExtraction on one core, {len(sample)} files ({costs.attrs['patches']} musicnn patches), seconds per track:\n")
        print(costs.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

        start = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=context, initializer=_init, initargs=(data,)) as pool:
            futures = [pool.submit(run, i, m, s, args.cache) for i in INPUTS for m in range(len(METHODS)) for s in range(args.seeds)]
            rows = [row for future in futures for row in future.result()]
        _init(data)
        print(f"\n{args.seeds} seeds, {len(rows)} trials in {time.perf_counter() - start:.0f} s on {args.workers} worker(s); k = {len(data.label_names)}\n")
        print(method_table(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("\n" + "\n".join(selection_lines(rows)))


if __name__ == "__main__":
    main()
