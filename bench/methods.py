"""Every method of issue 13 on the study's FMA table (or the FMA features.csv slice), as means ± std over seeds.

Each method is a model (trained once per seed with ``musicvae.trial.embed``)
and a way of clustering it (``musicvae.trial.evaluate``: K-Means directly,
after the UMAP stage, IDEC, VaDE's own posterior, pooled by artist), exactly
as a sweep's trials run them. Prints one row per method: the six metrics
(silhouette, Calinski-Harabasz, Davies-Bouldin in the space the clusterer
saw; ARI, NMI, purity against the genres, for evaluation only), active
latent units, and the seconds of a trial (training + space + clustering, on
one core). Labels never enter a method; ``metadata`` says which use the
artist column.

    python bench/methods.py                      # FMA table, 5 seeds, 2 workers (about 25 minutes on 2 cores)
    python bench/methods.py --collection fma-features --seeds 3
    python bench/methods.py --only 'β=0.25'
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from _common import ROOT, SHARED, one_thread_per_worker  # noqa: E402

from musicvae.config.sections import DataConfig  # noqa: E402
from musicvae.config.sweep_file import parse_sweep  # noqa: E402

VAE = {"model": "vae", "beta": 0.5, "epochs": 100}
STUDY_VAE = {"model": "vae", "beta": 0.5, "epochs": 30}  # the study's β sweep: 30 epochs
MULTIMODAL = {"model": "multimodal_vae", "beta": 1.0, "epochs": 30}
UMAP = {"manifold": "umap", "manifold_dim": 10, "manifold_neighbors": 50, "manifold_min_dist": 0.0}
POOLED = {"group_weight": 0.8}
UNPOOLED = {"group_weight": 0.0}

# (name, uses metadata, model parameters, [(clusterer name, clusterer parameters)])
METHODS = [
    ("raw", False, {"model": "raw"}, [("kmeans", {}), ("UMAP + kmeans", UMAP)]),
    ("vae β=0.5, 30 epochs (the study)", False, STUDY_VAE, [("kmeans", {})]),
    ("vae β=0.5, 100 epochs", False, VAE, [("kmeans", {}), ("UMAP + kmeans", UMAP), ("idec", {"clusterer": "idec"})]),
    ("vae β=0.25, 100 epochs", False, {**VAE, "beta": 0.25}, [("UMAP + kmeans", UMAP), ("idec γ=50", {"clusterer": "idec", "idec_gamma": 50.0})]),
    ("vade β=1, 100 epochs", False, {"model": "vade", "beta": 1.0, "epochs": 100}, [("vade", {"clusterer": "vade"}), ("kmeans", {})]),
    ("multimodal_vae β=1, MiniLM title + artist", True, MULTIMODAL, [("kmeans", {})]),
    ("multimodal_vae β=1, free bits 0.5", True, {**MULTIMODAL, "free_bits": 0.5}, [("kmeans", {})]),
    ("multimodal_vae β=4, free bits 0.5", True, {**MULTIMODAL, "beta": 4.0, "free_bits": 0.5}, [("kmeans", {})]),
    ("raw, pooled by artist", True, {"model": "raw"}, [("kmeans", POOLED)]),
    ("vae β=0.5, 100 epochs, pooled by artist", True, VAE, [("kmeans", POOLED), ("UMAP + kmeans", {**POOLED, **UMAP})]),
]
METRICS = ("silhouette", "calinski_harabasz", "davies_bouldin", "ari", "nmi", "purity", "latent_active_units", "trial_seconds")


def data_config(collection: str, cache: Path) -> DataConfig:
    text = {"method": "sentence_transformer", "columns": ["title", "artist"]}
    if collection == "fma":
        source = {"kind": "table", "path": str(SHARED / "fma5_seed_mfcc40.csv"), "label_column": "genre"}
    else:
        folder = SHARED / "fma_metadata_slice"
        source = {"kind": "fma_features", "features_csv": str(folder / "features.csv"), "labels_csv": str(folder / "labels.csv")}
    return parse_sweep({"name": "x", "data": {"source": source, "text": text, "group_by": ["artist"], "cache_dir": str(cache)}}).data


_DATA = None


def _init(cfg: DataConfig) -> None:
    from musicvae.data.dataset import load_feature_set

    global _DATA
    one_thread_per_worker()
    _DATA = load_feature_set(cfg)


def run(method: int, seed: int, cache: Path) -> list[dict]:
    """One model and seed: train once, then each way of clustering it (what a sweep's trials of that model and seed do)."""
    from musicvae.config.params import TrialParams
    from musicvae.trial import embed, evaluate

    name, metadata, model, clusterers = METHODS[method]
    pooled = any(c.get("group_weight", 0) > 0 for _, c in clusterers)
    start = time.perf_counter()
    embedded = embed(TrialParams(**model, **UNPOOLED, seed=seed), _DATA)
    fit = time.perf_counter() - start
    rows = []
    for clusterer, options in clusterers:
        params = TrialParams(**model, **{**UNPOOLED, **options}, seed=seed)
        start = time.perf_counter()
        try:
            metrics = evaluate(params, _DATA, embedded, cache_dir=cache / "manifolds").metrics
        except Exception as exc:  # noqa: BLE001 - a method that fails (VaDE collapsing) is a row that says so
            metrics = {"error": f"{type(exc).__name__}: {exc}"}
        metrics["trial_seconds"] = fit + time.perf_counter() - start
        rows.append({"method": f"{name} + {clusterer}", "metadata": metadata or pooled, "seed": seed, **metrics})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", choices=("fma", "fma-features"), default="fma")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=Path, default=ROOT / ".musicvae" / "bench" / "methods")
    parser.add_argument("--out", type=Path, help="write every trial's row to this CSV")
    parser.add_argument("--only", help="run the methods whose model name contains this text, e.g. 'β=0.25'")
    args = parser.parse_args()
    if not SHARED.exists():
        raise SystemExit(f"needs the shared data at {SHARED} (set MUSICVAE_SHARED_DATA)")
    import ray

    cfg = data_config(args.collection, args.cache)
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)  # the text embeddings (Ray Data), once
    _init(cfg)
    ray.shutdown()
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init, initargs=(cfg,)) as pool:
        chosen = [m for m, method in enumerate(METHODS) if args.only is None or args.only in method[0]]
        futures = [pool.submit(run, m, s, args.cache) for m in chosen for s in range(args.seeds)]
        rows = [row for future in futures for row in future.result()]
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    failed = table[table["error"].notna()] if "error" in table else table.iloc[:0]
    ok = table.drop(failed.index)
    grouped = ok.groupby("method", sort=False)
    summary = pd.DataFrame({"metadata": grouped["metadata"].first(), "n": grouped.size()})
    for metric in METRICS:
        if metric in ok:
            mean, std = grouped[metric].mean(), grouped[metric].std(ddof=1)
            summary[metric] = [f"{m:.4f} ± {s:.4f}" if np.isfinite(m) else "-" for m, s in zip(mean, std.fillna(0.0))]
    print(f"\n## {args.collection}: {args.seeds} seeds, {len(table)} trials in {time.perf_counter() - start:.0f} s on {args.workers} worker(s)\n")
    print(summary.reset_index().to_string(index=False))
    for method, group in failed.groupby("method"):
        print(f"\n{method}: {len(group)} of {args.seeds} seeds failed: {group['error'].iloc[0]}")


if __name__ == "__main__":
    main()
