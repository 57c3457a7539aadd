"""How well does label-free selection choose? Regret and rank correlation of every rule on several labelled collections.

For each collection it runs a grid of methods (the study's hard grid: raw,
PCA, AE, β-VAEs and, where there is text, multimodal β-VAEs at β 0.5/1/4/10,
each with K-Means, agglomerative and DBSCAN, over three seeds), exactly as a
sweep's trials do (``musicvae.trial.embed`` once per model and seed, then
``musicvae.trial.evaluate`` per clusterer, the two halves of ``run_trial``),
then scores them with ``musicvae.selection.select_methods`` as the sweep does.
For every rule it prints the pick, the regret (the oracle's mean ARI minus the
pick's) and the Spearman correlation of the rule's method score with the
methods' mean ARI and mean NMI (non-degenerate methods), one table per
collection, then ``selection regret: <collection> <value>`` for the default
rule.

Collections:
  fma           the study's FMA table (2996 tracks x 40 MFCC statistics, 5 genres; text: MiniLM of artist + title)
  fma-features  the FMA features.csv slice (Hip-Hop vs Rock, 140 MFCC statistics)
  demo-0/demo-1 the demo collection (sweeps/demo-hard.yaml) at generator seeds 0 and 1
  noise         a control with no structure: 1000 x 40 Gaussian features, k = 5. The right
                answer is "no stable clustering": the rule must not present a confident winner.

Trial results are cached under --cache (per collection and configuration), so
rerunning to compare rules costs seconds; --fresh recomputes.

    python bench/selection.py                         # every collection (about 10 minutes on 2 cores, cold)
    python bench/selection.py --collections fma noise
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSICVAE_SHARED_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT))

from musicvae.config import DataConfig, SelectionConfig  # noqa: E402
from musicvae.dataset import FeatureSet, load_feature_set  # noqa: E402
from musicvae.leaderboard import TrialRecord, trial_table  # noqa: E402
from musicvae.params import TrialParams, grid_points  # noqa: E402
from musicvae.selection import RULES, Selection, select_methods  # noqa: E402
from musicvae.sweep_file import load_sweep, parse_sweep  # noqa: E402

COLLECTIONS = ("fma", "fma-features", "demo-0", "demo-1", "noise")


def collection(name: str, cache: Path) -> tuple[DataConfig, dict, int | None]:
    """The data, the space (a sweep file's) and k (None: the number of labels) of a collection."""
    hard = load_sweep(ROOT / "sweeps" / "hard.yaml")
    audio_space = {**hard.space, "model": [m for m in hard.space["model"] if m != "multimodal_vae"]}
    if name == "fma":
        return hard.data.model_copy(update={"source": hard.data.source.model_copy(update={"path": str(SHARED / "fma5_seed_mfcc40.csv")})}), hard.space, None
    if name == "fma-features":
        source = {
            "kind": "fma_features",
            "features_csv": str(SHARED / "fma_metadata_slice" / "features.csv"),
            "labels_csv": str(SHARED / "fma_metadata_slice" / "labels.csv"),
        }
        return parse_sweep({"name": "x", "data": {"source": source}}).data, audio_space, None
    if name.startswith("demo-"):
        demo = load_sweep(ROOT / "sweeps" / "demo-hard.yaml")
        source = demo.data.source.model_copy(update={"seed": int(name.split("-")[1])})
        return demo.data.model_copy(update={"source": source, "cache_dir": str(cache / "data")}), demo.space, None
    if name == "noise":
        path = cache / "noise.csv"
        if not path.exists():
            rng = np.random.default_rng(0)
            table = pd.DataFrame(rng.standard_normal((1000, 40)), columns=[f"f{i:02d}" for i in range(40)])
            table.insert(0, "track_id", [f"n{i:04d}" for i in range(1000)])
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_csv(path, index=False)
        data = parse_sweep({"name": "x", "data": {"source": {"kind": "table", "path": str(path), "label_column": None}}}).data
        return data, audio_space, 5
    raise SystemExit(f"unknown collection '{name}' (known: {', '.join(COLLECTIONS)})")


_DATA: FeatureSet | None = None


def _init(data: FeatureSet) -> None:
    import torch

    global _DATA
    _DATA = data
    torch.set_num_threads(1)


def run_embedding(configs: list[dict]) -> tuple[np.ndarray, list[tuple[dict, dict, np.ndarray]]]:
    """One model and seed: embed once, then evaluate each clusterer (what the sweep's trials of that model and seed do)."""
    from musicvae.trial import embed, evaluate

    first = TrialParams(**configs[0])
    embedded = embed(first, _DATA)
    results = []
    for config in configs:
        result = evaluate(TrialParams(**config), _DATA, embedded)
        results.append((config, result.metrics, result.clusters))
    return embedded.embedding, results


def run_grid(name: str, cache: Path, workers: int, fresh: bool, seeds: int | None = None) -> tuple[pd.DataFrame, dict, dict, np.ndarray]:
    data_cfg, space, k = collection(name, cache)
    if k is not None:
        space = {**space, "n_clusters": k}
    if seeds is not None:
        space = {**space, "seed": list(range(seeds))}
    data = load_feature_set(data_cfg)
    points = [{**{key: v for key, v in space.items() if not isinstance(v, list)}, **p} for p in grid_points(space)]
    groups: dict[str, list[dict]] = {}
    for point in points:
        params = TrialParams(**point).model_dump()
        model_key = json.dumps({key: v for key, v in params.items() if key not in ("clusterer", "linkage", "eps", "min_samples", "n_clusters")}, sort_keys=True)
        groups.setdefault(model_key, []).append(point)
    folder = cache / name
    folder.mkdir(parents=True, exist_ok=True)
    todo = {key: configs for key, configs in groups.items() if fresh or not (folder / f"{_digest(key, configs)}.npz").exists()}
    start = time.perf_counter()
    if todo:
        print(f"{name}: {len(points)} trials, {len(groups)} embeddings ({len(todo)} to compute) on {workers} worker(s)", flush=True)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(data,)) as pool:
            futures = {key: pool.submit(run_embedding, configs) for key, configs in todo.items()}
            for key, future in futures.items():
                embedding, results = future.result()
                arrays = {"embedding": embedding, **{f"clusters{i}": r[2] for i, r in enumerate(results)}}
                meta = json.dumps([[r[0], r[1]] for r in results])
                np.savez(folder / f"{_digest(key, groups[key])}.npz", meta=np.array(meta), **arrays)
        print(f"{name}: computed in {time.perf_counter() - start:.0f} s", flush=True)
    records, clusters, embeddings = [], {}, {}
    for i, (key, configs) in enumerate(groups.items()):
        saved = np.load(folder / f"{_digest(key, configs)}.npz")
        for j, (config, metrics) in enumerate(json.loads(str(saved["meta"]))):
            trial = f"t{i:03d}-{j}"
            records.append(TrialRecord(trial, "OK", config, metrics))
            clusters[trial] = saved[f"clusters{j}"]
            embeddings[trial] = saved["embedding"]
    return trial_table(records, "silhouette", "max"), clusters, embeddings, data.inputs


CACHE_VERSION = "3"  # bump when a trial's metrics change, so cached trials are recomputed


def _digest(key: str, configs: list[dict]) -> str:
    return hashlib.sha256((CACHE_VERSION + key + json.dumps(configs, sort_keys=True)).encode()).hexdigest()[:20]


def rule_table(selection: Selection) -> pd.DataFrame:
    """Per rule: its pick, the regret, the Spearman correlation of its score with mean ARI and NMI (non-degenerate methods)."""
    scores = selection.scores[~selection.scores["degenerate"]]
    labelled = selection.oracle is not None
    rows = []
    for rule in RULES:
        pick = selection.picks.get(rule, "-")
        row = {"rule": rule, "pick": pick}
        if labelled:
            row["regret"] = selection.regret(pick)
            row["regret_se"] = selection.regret_se(pick)
            for metric in ("ari", "nmi"):
                row[f"spearman_{metric}"] = spearmanr(scores[f"score_{rule}"], scores[metric], nan_policy="omit").statistic
        stability = selection.scores.set_index("method")["stability"]
        row["pick_stability"] = stability.get(pick, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=COLLECTIONS)
    parser.add_argument("--cache", type=Path, default=ROOT / ".musicvae" / "bench" / "selection")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sample", type=int, default=SelectionConfig().sample)
    parser.add_argument("--seeds", type=int, help="seeds per method (default: the sweep file's, three)")
    parser.add_argument("--fresh", action="store_true", help="recompute every trial instead of reading the cache")
    args = parser.parse_args()
    if not SHARED.exists() and any(c.startswith("fma") for c in args.collections):
        raise SystemExit(f"the FMA collections need the shared data at {SHARED} (set MUSICVAE_SHARED_DATA)")
    import ray

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)  # the demo collections' extraction (Ray Data)
    cfg = SelectionConfig(sample=args.sample)
    summary = []
    for name in args.collections:
        table, clusters, embeddings, inputs = run_grid(name, args.cache, args.workers, args.fresh, args.seeds)
        selection = select_methods(table, clusters, embeddings, inputs, cfg)
        rules = rule_table(selection)
        print(f"\n## {name}: {len(table)} trials, {len(selection.scores)} methods, {selection.n_spaces} spaces; selection took {selection.seconds:.1f} s\n")
        print(rules.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("\n" + selection.summary())
        summary.append((name, selection))
    print()
    for name, selection in summary:
        if selection.oracle is not None:
            print(f"selection regret: {name} {selection.regret(selection.winner):.4f} (standard error {selection.regret_se(selection.winner):.4f})")
        else:
            verdict = "stable" if selection.stable else "no stable clustering"
            win = selection.row(selection.winner)["stability"] if selection.winner else float("nan")
            print(f"selection verdict: {name} {verdict} (winner's stability {win:.3f}, threshold {selection.min_stability:g})")
    ray.shutdown()


if __name__ == "__main__":
    main()
