"""How well does label-free selection choose? Regret and rank correlation of every rule on several labelled collections.

For each collection it runs a grid of methods exactly as a sweep's trials do
(``musicvae.trial.embed`` once per model and seed, then
``musicvae.trial.evaluate`` per clusterer, the two halves of ``run_trial``),
then scores them with ``musicvae.evaluation.selection.select_methods`` as the sweep does.
For every rule it prints the pick, the regret (the oracle's mean ARI minus the
pick's) and the Spearman correlation of the rule's method score with the
methods' mean ARI and mean NMI (non-degenerate methods), one table per
collection, then ``selection regret: <collection> <value>`` for the default
rule with the baseline rule (``ch_neighbours``, the default before k was
searched) beside it, and their mean regret over the labelled collections.

Grids:
  default       the study's hard grid: raw, PCA, AE, β-VAEs and, where there is text, multimodal
                β-VAEs at β 0.5/1/4/10, each with K-Means, agglomerative and DBSCAN, three seeds, k = the label count
  --k-range     k searched as a sweep searches it by default (musicvae.config.params.default_k_range: 2-10, 12,
                14, 16, 20 up to sqrt(n/2)) over raw, PCA and a β = 0.5 VAE x K-Means, Ward and GMM, three seeds

Collections:
  fma           the study's FMA table (2996 tracks x 40 MFCC statistics, 5 genres; text: MiniLM of artist + title)
  fma-features  the FMA features.csv slice (Hip-Hop vs Rock, 140 MFCC statistics)
  demo-0/demo-1 the demo collection (sweeps/demo-hard.yaml) at generator seeds 0 and 1
  demo-merged   demo-0 with two of its six genres under one label: the label count (5) is not the number of groups
  mridangam-stroke/-tonic  2,878 real mridangam strokes (MFCC statistics), labelled by stroke (9) and by tonic (6):
                two valid groupings of the same audio, so no label-free pick can be the oracle of both
  noise         a control with no structure: 1000 x 40 Gaussian features, k = 5. The right
                answer is "no stable clustering": the rule must not present a confident winner.

Trial results are cached under --cache (per collection and configuration), so
rerunning to compare rules costs seconds to a minute; --fresh recomputes.

    python bench/selection.py                         # every collection (about 17 minutes on 2 cores, cold)
    python bench/selection.py --k-range               # about 30 minutes cold
    python bench/selection.py --collections fma noise
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from _common import ROOT, SHARED  # noqa: E402
from scipy.stats import spearmanr

from musicvae.config.params import TrialParams, default_k_range, grid_points  # noqa: E402
from musicvae.config.sections import DataConfig, SelectionConfig  # noqa: E402
from musicvae.config.sweep_file import load_sweep, parse_sweep  # noqa: E402
from musicvae.data.dataset import FeatureSet, load_feature_set  # noqa: E402
from musicvae.evaluation.leaderboard import TrialRecord, trial_table  # noqa: E402
from musicvae.evaluation.selection import RULES, Selection, select_methods  # noqa: E402

COLLECTIONS = ("fma", "fma-features", "demo-0", "demo-1", "demo-merged", "mridangam-stroke", "mridangam-tonic", "noise")
# --k-range: k searched as a sweep searches it by default (musicvae.config.params.default_k_range), over the issue-28 grid.
K_SPACE = {"model": ["raw", "pca", "vae"], "latent_dim": 32, "beta": 0.5, "epochs": 30, "clusterer": ["kmeans", "agglomerative", "gmm"], "seed": [0, 1, 2]}
MERGED = ("ambient", "chiptune")  # demo-merged: two of the demo's six generated genres under one label (five labels, six groups)


def collection(name: str, cache: Path) -> tuple[DataConfig, dict, int | None]:
    """The data, the space (a sweep file's) and k (None: the number of labels) of a collection."""
    hard = load_sweep(ROOT / "sweeps" / "hard.yaml")
    # Without the text model, and k the collection's label count (hard.yaml fixes the FMA table's 5).
    audio_space = {**{key: v for key, v in hard.space.items() if key != "n_clusters"}, "model": [m for m in hard.space["model"] if m != "multimodal_vae"]}
    if name == "fma":
        return hard.data.model_copy(update={"source": hard.data.source.model_copy(update={"path": str(SHARED / "fma5_seed_mfcc40.csv")})}), hard.space, None
    if name == "fma-features":
        source = {
            "kind": "fma_features",
            "features_csv": str(SHARED / "fma_metadata_slice" / "features.csv"),
            "labels_csv": str(SHARED / "fma_metadata_slice" / "labels.csv"),
        }
        return parse_sweep({"name": "x", "data": {"source": source}}).data, audio_space, None
    if name == "demo-merged":  # demo-0's tracks; its labels are merged where the grid runs (merged_labels)
        return collection("demo-0", cache)
    if name.startswith("demo-"):
        demo = load_sweep(ROOT / "sweeps" / "demo-hard.yaml")
        source = demo.data.source.model_copy(update={"seed": int(name.split("-")[1])})
        return demo.data.model_copy(update={"source": source, "cache_dir": str(cache / "data")}), demo.space, None
    if name.startswith("mridangam-"):  # one audio collection, two label sets: the label-optimal k is not one number
        labels = str(SHARED / "mridangam" / "labels.csv")
        source = {"kind": "manifest", "path": labels, "label_column": name.split("-")[1], "id_column": "freesound_id", "text_columns": []}
        audio = {"features": ["mfcc"], "n_mfcc": 20, "stats": "mean_std"}
        return parse_sweep({"name": "x", "data": {"source": source, "audio": audio, "cache_dir": str(cache / "data")}}).data, audio_space, None
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


_CACHE: Path | None = None


def _init(data: FeatureSet, cache_dir: Path | None = None) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    global _DATA, _CACHE
    _DATA, _CACHE = data, cache_dir
    torch.set_num_threads(1)
    # One BLAS thread per worker, as Ray gives a trial (OMP_NUM_THREADS = its CPUs): two workers each running
    # OpenBLAS's two threads on two cores made a GMM fit 80x slower (35 s against 0.43 s at k = 20, 1000 x 40).
    threadpool_limits(1)


def run_embedding(configs: list[dict]) -> tuple[np.ndarray, list[tuple[dict, dict, np.ndarray]]]:
    """One model and seed: embed once, then evaluate each clusterer (what the sweep's trials of that model and seed do)."""
    from musicvae.trial import embed, evaluate

    first = TrialParams(**configs[0])
    embedded = embed(first, _DATA)
    results = []
    for config in configs:
        result = evaluate(TrialParams(**config), _DATA, embedded, cache_dir=_CACHE)  # the latent analysis's MI, once per embedding
        results.append((config, result.metrics, result.clusters))
    return embedded.embedding, results


def merged_labels(data: FeatureSet) -> FeatureSet:
    """demo-merged: the demo's labels with MERGED under one name, so the label count (5) is not the number of groups (6)."""
    import dataclasses

    names = [n for n in data.label_names if n not in MERGED[1:]]
    named = np.asarray(data.label_names)[data.labels]
    named[np.isin(named, MERGED)] = MERGED[0]
    return dataclasses.replace(data, labels=np.array([names.index(n) for n in named]), label_names=names)


def run_grid(name: str, cache: Path, workers: int, fresh: bool, seeds: int | None = None, k_range: bool = False) -> tuple[pd.DataFrame, dict, dict, np.ndarray]:
    data_cfg, space, k = collection(name, cache)
    data = load_feature_set(data_cfg)
    if name == "demo-merged":
        data = merged_labels(data)
    if k_range:
        space = {**K_SPACE, "n_clusters": default_k_range(len(data.track_ids))}
    elif k is not None:
        space = {**space, "n_clusters": k}
    if seeds is not None:
        space = {**space, "seed": list(range(seeds))}
    points = [{**{key: v for key, v in space.items() if not isinstance(v, list)}, **p} for p in grid_points(space)]
    groups: dict[str, list[dict]] = {}
    for point in points:
        params = TrialParams(**point).model_dump()
        model_key = json.dumps({key: v for key, v in params.items() if key not in ("clusterer", "linkage", "eps", "min_samples", "n_clusters")}, sort_keys=True)
        groups.setdefault(model_key, []).append(point)
    folder = cache / (f"{name}-k" if k_range else name)
    folder.mkdir(parents=True, exist_ok=True)
    todo = {key: configs for key, configs in groups.items() if fresh or not (folder / f"{_digest(key, configs)}.npz").exists()}
    start = time.perf_counter()
    if todo:
        print(f"{name}: {len(points)} trials, {len(groups)} embeddings ({len(todo)} to compute) on {workers} worker(s)", flush=True)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(data, folder / "manifolds")) as pool:
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
    parser.add_argument("--k-range", action="store_true", help="k searched as a sweep does by default, over raw/PCA/VAE x K-Means/Ward/GMM x 3 seeds")
    args = parser.parse_args()
    if not SHARED.exists() and any(c.startswith(("fma", "mridangam")) for c in args.collections):
        raise SystemExit(f"the FMA and mridangam collections need the shared data at {SHARED} (set MUSICVAE_SHARED_DATA)")
    import ray

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)  # the demo collections' extraction (Ray Data)
    cfg = SelectionConfig(sample=args.sample)
    summary = []
    for name in args.collections:
        table, clusters, embeddings, inputs = run_grid(name, args.cache, args.workers, args.fresh, args.seeds, args.k_range)
        selection = select_methods(table, clusters, embeddings, inputs, cfg)
        rules = rule_table(selection)
        print(f"\n## {name}: {len(table)} trials, {len(selection.scores)} methods, {selection.n_spaces} spaces; selection took {selection.seconds:.1f} s\n")
        print(rules.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print("\n" + selection.summary())
        summary.append((name, selection))
    print()
    for name, selection in summary:
        if selection.oracle is not None:
            baseline = selection.picks.get(BASELINE)
            print(
                f"selection regret: {name} {selection.regret(selection.winner):.4f} (standard error {selection.regret_se(selection.winner):.4f}); "
                f"k = {_k(selection, selection.winner)}; baseline {BASELINE}: {selection.regret(baseline):.4f}, k = {_k(selection, baseline)}"
            )
        else:
            verdict = "stable" if selection.stable else "no stable clustering"
            win = selection.row(selection.winner)["stability"] if selection.winner else float("nan")
            print(f"selection verdict: {name} {verdict} (winner's stability {win:.3f}, threshold {selection.min_stability:g})")
    regrets = every_rule(summary)
    if not regrets.empty:
        print("\n" + regrets.to_string(float_format=lambda v: f"{v:.3f}") + "\n")
        for rule in (cfg.rule, BASELINE):
            print(f"mean regret over the labelled collections: {rule} {regrets.loc[rule, 'mean']:.4f} (largest {regrets.loc[rule, 'largest']:.4f})")
    ray.shutdown()


def every_rule(summary: list[tuple[str, Selection]]) -> pd.DataFrame:
    """Every rule's regret on each labelled collection, with its mean and largest: one line per rule."""
    table = pd.DataFrame({name: {rule: selection.regret(selection.picks.get(rule)) for rule in RULES} for name, selection in summary if selection.oracle})
    return table.assign(mean=table.mean(axis=1), largest=table.max(axis=1)).sort_values("mean")


BASELINE = "ch_neighbours"  # the default rule before k was searched (issue 28): printed beside the default


def _k(selection: Selection, method: str | None) -> str:
    k = selection.row(method).get("n_clusters") if method else None
    return "-" if k is None or pd.isna(k) else str(int(k))


if __name__ == "__main__":
    main()
