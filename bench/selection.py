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
import dataclasses
import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from _common import ROOT, SHARED  # noqa: E402
from scipy.stats import spearmanr

from musicvae.config.params import TrialParams, default_k_range, grid_points  # noqa: E402
from musicvae.config.sections import DataConfig, SelectionConfig  # noqa: E402
from musicvae.config.sweep_file import load_sweep, parse_sweep  # noqa: E402
from musicvae.data.dataset import FeatureSet, load_feature_set  # noqa: E402
from musicvae.evaluation import selection as selection_module  # noqa: E402
from musicvae.evaluation.leaderboard import TrialRecord, trial_table  # noqa: E402
from musicvae.evaluation.metrics import external_metrics  # noqa: E402
from musicvae.evaluation.selection import RULES, Selection, select_methods  # noqa: E402

SINGLE = ("fma", "fma-features", "demo-0", "demo-1", "demo-merged", "mridangam-stroke", "mridangam-tonic", "noise")
# Several inputs per collection: MFCC statistics and musicnn's MSD and MTT features of the same audio (issue 35).
MULTI = ("mridangam-stroke-musicnn", "mridangam-tonic-musicnn", "gtzan-short", "emotify", "mood4q", "fma-clips")
COLLECTIONS = SINGLE + MULTI
# The multi-input grid (sweeps/pretrained.yaml's, with GMM): 3 inputs x raw / PCA / β-VAE x K-Means / Ward / GMM x 3 seeds.
MULTI_SPACE = {
    "input": ["mfcc", "musicnn_msd", "musicnn_mtt"], "model": ["raw", "pca", "vae"], "latent_dim": 16, "beta": 0.5, "epochs": 100,
    "clusterer": ["kmeans", "agglomerative", "gmm"], "seed": [0, 1, 2],
}  # fmt: skip
MUSICNN_AUDIO = {"features": ["mfcc", "musicnn"], "duration": None, "n_mfcc": 20, "stats": "mean_std", "musicnn": {"models": ["MSD", "MTT"]}}
FOLDERS = {"gtzan-short": ("gtzan_short", "genre"), "emotify": ("emotify", "genre"), "mood4q": ("mood4q", "quadrant")}  # folder, label column
# --k-range: k searched as a sweep searches it by default (musicvae.config.params.default_k_range), over the issue-28 grid.
K_SPACE = {"model": ["raw", "pca", "vae"], "latent_dim": 32, "beta": 0.5, "epochs": 30, "clusterer": ["kmeans", "agglomerative", "gmm"], "seed": [0, 1, 2]}
MERGED = ("ambient", "chiptune")  # demo-merged: two of the demo's six generated genres under one label (five labels, six groups)


def collection(name: str, cache: Path) -> tuple[DataConfig, dict, int | None]:
    """The data, the space (a sweep file's) and k (None: the number of labels) of a collection."""
    if name in MULTI:
        return multi_input_data(name, cache), MULTI_SPACE, None
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


def multi_input_data(name: str, cache: Path) -> DataConfig:
    """A real audio collection with MFCC statistics and musicnn's MSD and MTT features (whole files: none is longer than 30 s)."""
    if name.startswith("mridangam-"):
        path, label, ids = SHARED / "mridangam" / "labels.csv", name.split("-")[1], "freesound_id"
    elif name == "fma-clips":  # the ten clips' labels.csv names track ids, not paths: a manifest beside the cache
        labels = pd.read_csv(SHARED / "fma_small_clips" / "labels.csv")
        labels["path"] = [str(SHARED / "fma_small_clips" / "fma_small" / "000" / f"{t:06d}.mp3") for t in labels["track_id"]]
        path, label, ids = cache / "fma-clips.csv", "genre", "track_id"
        path.parent.mkdir(parents=True, exist_ok=True)
        labels.to_csv(path, index=False)
    else:
        folder, label = FOLDERS[name]
        path, ids = SHARED / folder / "labels.csv", None
    source = {"kind": "manifest", "path": str(path), "label_column": label, "id_column": ids, "text_columns": []}
    return parse_sweep({"name": "x", "data": {"source": source, "audio": MUSICNN_AUDIO, "cache_dir": str(cache / "data")}}).data


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
    names = [n for n in data.label_names if n not in MERGED[1:]]
    named = np.asarray(data.label_names)[data.labels]
    named[np.isin(named, MERGED)] = MERGED[0]
    return dataclasses.replace(data, labels=np.array([names.index(n) for n in named]), label_names=names)


@dataclass(frozen=True)
class Subset:
    """Some of a collection's tracks, as if they were the whole collection: its inputs standardised anew, its trials run anew."""

    tag: str  # '-half0a', '-draw100s1': part of the cache folder's name
    rows: np.ndarray

    def apply(self, data: FeatureSet) -> FeatureSet:
        from sklearn.preprocessing import StandardScaler

        rows = self.rows
        z = lambda x: StandardScaler().fit_transform(x[rows]).astype(np.float32)  # noqa: E731
        return dataclasses.replace(
            data, track_ids=[data.track_ids[i] for i in rows], features=z(data.features), labels=data.labels[rows],
            text=data.text.iloc[rows].reset_index(drop=True), vectors={k: z(v) for k, v in data.vectors.items()},
            tags={k: v[rows] for k, v in data.tags.items()}, spectrograms={}, preprocessing=None,
        )  # fmt: skip


def subsets(labels: np.ndarray, draws: int, size: int) -> list[Subset]:
    """Two random halves (a seeded split of the collection), and ``draws`` random draws of ``size`` tracks, alternately stratified
    by label (each label's share kept: labels choose which tracks a benchmark draws, never what a rule sees) and not."""
    n, out = len(labels), []
    order = np.random.default_rng(0).permutation(n)
    out += [Subset("-half0a", np.sort(order[: n // 2])), Subset("-half0b", np.sort(order[n // 2 :]))]
    for i in range(draws):
        rng = np.random.default_rng([1, i])
        if i % 2:
            shares = np.bincount(labels) / n
            counts = np.floor(shares * size).astype(int)
            counts[np.argsort(-(shares * size - counts))[: size - counts.sum()]] += 1
            rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), counts[c], replace=False) for c in range(len(counts))])
            out.append(Subset(f"-draw{size}s{i}", np.sort(rows)))
        else:
            out.append(Subset(f"-draw{size}r{i}", np.sort(rng.choice(n, size, replace=False))))
    return out


def run_grid(
    name: str, cache: Path, workers: int, fresh: bool, seeds: int | None = None, k_range: bool = False, subset: Subset | None = None
) -> tuple[pd.DataFrame, dict, dict, dict]:
    """Every trial of the collection's grid (from the cache where it ran before): the trial table, clusters, embeddings, inputs."""
    data_cfg, space, k = collection(name, cache)
    data = load_feature_set(data_cfg)
    if name == "demo-merged":
        data = merged_labels(data)
    if subset is not None:
        data = subset.apply(data)
    shown_k = None  # the k whose trials the selection sees (None: every trial of the grid)
    if name in MULTI:  # one grid over the k searched and the label count: --k-range selects from the first, k given from the second
        searched = default_k_range(len(data.track_ids))
        union = {*searched, data.n_labels} if subset is None else set(searched) if k_range else {data.n_labels}  # a subset: only what is shown
        space = {**space, "n_clusters": sorted(union)}
        shown_k = set(searched) if k_range else {data.n_labels}
    elif k_range:
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
    trials = name.replace("-stroke-", "-").replace("-tonic-", "-")  # the strokes' trials are one grid, whichever labels score it
    folder = cache / (trials + ("-k" if k_range and name not in MULTI else "") + (subset.tag if subset else ""))
    folder.mkdir(parents=True, exist_ok=True)
    todo = {key: configs for key, configs in groups.items() if fresh or not (folder / f"{_digest(key, configs)}.npz").exists()}
    start = time.perf_counter()
    if todo:
        print(f"{folder.name}: {len(points)} trials, {len(groups)} embeddings ({len(todo)} to compute) on {workers} worker(s)", flush=True)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init, initargs=(data, folder / "manifolds")) as pool:
            futures = {key: pool.submit(run_embedding, configs) for key, configs in todo.items()}
            for key, future in futures.items():
                embedding, results = future.result()
                arrays = {"embedding": embedding, **{f"clusters{i}": r[2] for i, r in enumerate(results)}}
                meta = json.dumps([[r[0], r[1]] for r in results])
                np.savez(folder / f"{_digest(key, groups[key])}.npz", meta=np.array(meta), **arrays)
        print(f"{folder.name}: computed in {time.perf_counter() - start:.0f} s", flush=True)
    records, clusters, embeddings = [], {}, {}
    for i, (key, configs) in enumerate(groups.items()):
        saved = np.load(folder / f"{_digest(key, configs)}.npz")
        for j, (config, metrics) in enumerate(json.loads(str(saved["meta"]))):
            if shown_k is not None and config["n_clusters"] not in shown_k:
                continue
            trial = f"t{i:03d}-{j}"
            if name in MULTI:  # the labels' scores from the clusters, so one cached grid serves every labelling of its tracks
                metrics = {**metrics, **external_metrics(data.labels, saved[f"clusters{j}"])}
            records.append(TrialRecord(trial, "OK", config, metrics))
            clusters[trial] = saved[f"clusters{j}"]
            embeddings[trial] = saved["embedding"]
    return trial_table(records, "silhouette", "max"), clusters, embeddings, data.inputs


CACHE_VERSION = "3"  # bump when a trial's metrics change, so cached trials are recomputed


def _digest(key: str, configs: list[dict]) -> str:
    return hashlib.sha256((CACHE_VERSION + key + json.dumps(configs, sort_keys=True)).encode()).hexdigest()[:20]


def timed_selection(table: pd.DataFrame, clusters: dict, embeddings: dict, inputs: dict, cfg: SelectionConfig) -> tuple[Selection, float]:
    """The selection, and the seconds of it spent on what per_input adds to the rules before it: the structure beyond the
    null in every input's space (``selection.beyond_null``, its Gaussian references clustered at every k); the rest of
    per_input is a regrouping of scores ``combined`` computes anyway."""
    spent, original = [], selection_module.beyond_null

    def timed(*args):  # noqa: ANN002, ANN202
        start = time.perf_counter()
        result = original(*args)
        spent.append(time.perf_counter() - start)
        return result

    selection_module.beyond_null = timed
    try:
        return select_methods(table, clusters, embeddings, inputs, cfg), sum(spent)
    finally:
        selection_module.beyond_null = original


def rule_table(selection: Selection) -> pd.DataFrame:
    """Per rule: its pick and the input it is built on, the regret and its standard error, the Spearman correlation of its score
    with mean ARI and NMI (non-degenerate methods), the pick's stability."""
    scores = selection.scores[~selection.scores["degenerate"]]
    by_method = selection.scores.set_index("method")
    labelled = selection.oracle is not None
    rows = []
    for rule in RULES:
        pick = selection.picks.get(rule, "-")
        row = {"rule": rule, "pick": pick, "input": by_method["input"].get(pick, "-")}
        if labelled:
            row["regret"] = selection.regret(pick)
            row["regret_se"] = selection.regret_se(pick)
            for metric in ("ari", "nmi"):
                row[f"spearman_{metric}"] = spearmanr(scores[f"score_{rule}"], scores[metric], nan_policy="omit").statistic
        row["pick_stability"] = by_method["stability"].get(pick, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def best_per_input(selection: Selection) -> pd.DataFrame:
    """Labels, evaluation only: each input's best method by mean ARI, and what it would have cost to choose it."""
    scores = selection.scores
    best = scores.loc[scores.groupby("input", sort=False)["ari"].idxmax(), ["input", "method", "ari", "nmi"]]
    return best.assign(regret=scores["ari"].max() - best["ari"]).sort_values("ari", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="+", default=list(COLLECTIONS), choices=COLLECTIONS)
    parser.add_argument("--cache", type=Path, default=ROOT / ".musicvae" / "bench" / "selection")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sample", type=int, default=SelectionConfig().sample)
    parser.add_argument("--seeds", type=int, help="seeds per method (default: the sweep file's, three)")
    parser.add_argument("--fresh", action="store_true", help="recompute every trial instead of reading the cache")
    parser.add_argument("--k-range", action="store_true", help="k searched as a sweep does by default")
    parser.add_argument(
        "--subsets", type=int, default=0, metavar="DRAWS", help="also each multi-input collection's two halves and DRAWS draws of --subset-size tracks"
    )
    parser.add_argument("--subset-size", type=int, default=100)
    args = parser.parse_args()
    if not SHARED.exists() and any(c not in ("demo-0", "demo-1", "demo-merged", "noise") for c in args.collections):
        raise SystemExit(f"the FMA, mridangam and real song collections need the shared data at {SHARED} (set MUSICVAE_SHARED_DATA)")
    import ray

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)  # the demo collections' extraction (Ray Data)
    cfg = SelectionConfig(sample=args.sample)
    summary = []
    for name in args.collections:
        table, clusters, embeddings, inputs = run_grid(name, args.cache, args.workers, args.fresh, args.seeds, args.k_range)
        selection, nulls = timed_selection(table, clusters, embeddings, inputs, cfg)
        print(
            f"\n## {name}: {len(table)} trials, {len(selection.scores)} methods, {selection.n_spaces} spaces; selection took {selection.seconds:.1f} s, "
            f"of which per_input's null references {nulls:.1f} s\n"
        )
        print(rule_table(selection).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if name in MULTI and selection.oracle is not None:
            print("\nEach input's best method (labels, evaluation only):\n")
            print(best_per_input(selection).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
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
        for group, names in (("labelled collections", list(regrets.columns[:-2])), ("multi-input collections", [c for c in regrets.columns if c in MULTI])):
            if names:
                for rule in (cfg.rule, BASELINE):
                    values = regrets.loc[rule, names]
                    print(f"mean regret over the {len(names)} {group}: {rule} {values.mean():.4f} (largest {values.max():.4f})")
    if args.subsets:
        subset_regrets(args, cfg, [n for n in args.collections if n in MULTI and n != "fma-clips"])
    ray.shutdown()


def subset_regrets(args: argparse.Namespace, cfg: SelectionConfig, names: list[str]) -> None:
    """The default's and the baseline's regret on each collection's random halves and draws (trials run anew on each)."""
    rows = []
    for name in names:
        labels = load_feature_set(collection(name, args.cache)[0]).labels
        for subset in subsets(labels, args.subsets, args.subset_size):
            table, clusters, embeddings, inputs = run_grid(name, args.cache, args.workers, args.fresh, args.seeds, args.k_range, subset)
            selection = select_methods(table, clusters, embeddings, inputs, cfg)
            row = {"collection": name, "subset": subset.tag[1:], "tracks": len(subset.rows), "oracle": selection.oracle}
            for rule in (cfg.rule, BASELINE):
                pick = selection.picks.get(rule)
                row[rule] = selection.regret(pick)
                row[f"{rule} pick"] = pick
            row["se"] = selection.regret_se(selection.winner)
            rows.append(row)
    table = pd.DataFrame(rows)
    print("\n## Random subsets (each subset's trials run anew: its own sweep)\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    for name, group in table.groupby("collection", sort=False):
        for rule in (cfg.rule, BASELINE):
            print(f"subset regret: {name} {rule} mean {group[rule].mean():.4f}, worst {group[rule].max():.4f} over {len(group)} subsets")


def every_rule(summary: list[tuple[str, Selection]]) -> pd.DataFrame:
    """Every rule's regret on each labelled collection, with its mean and largest: one line per rule."""
    table = pd.DataFrame({name: {rule: selection.regret(selection.picks.get(rule)) for rule in RULES} for name, selection in summary if selection.oracle})
    return table.assign(mean=table.mean(axis=1), largest=table.max(axis=1)).sort_values("mean")


BASELINE = "combined"  # the default rule before issue 35 (pooled over every input's spaces): printed beside the default


def _k(selection: Selection, method: str | None) -> str:
    k = selection.row(method).get("n_clusters") if method else None
    return "-" if k is None or pd.isna(k) else str(int(k))


if __name__ == "__main__":
    main()
