"""Choosing a method without labels: every clustering scored in one shared set of spaces.

A trial's own silhouette is measured in its own embedding, so it cannot rank
trials: a collapsed latent (a β-VAE at β = 10) packs the tracks into tight
clumps and scores highest while it groups genres worst. Scores become
comparable once every clustering is measured in the *same* spaces. After the
trials finish, each finished clustering is scored in the standardised input
features and in every distinct embedding of the sweep (active dimensions
only, z-scored, on one seeded row sample): its silhouette, Calinski-Harabasz
and neighbour agreement are ranked within each space and the ranks averaged
over the spaces (the rank pooling of ACE, Wang & Ye 2024). Beside that:

* stability: a grouping the data holds comes back when the data or the seed
  changes (Ben-Hur et al. 2002, Lange et al. 2004). Per method, the lower of
  the mean ARI between its seeds' clusterings and its trials' resample
  stability (two 80 % subsamples, :func:`musicvae.clustering.resample_stability`).
  Stability alone cannot see too few clusters, so it filters, it does not rank;
* consensus: the mean ARI of a clustering with the other methods' (DISCOTEC,
  Ohl & Lindsten 2025).

The default rule, ``combined``, came from the labelled collections of
``bench/selection.py`` (a rule validated on one collection is not validated):
the methods at least ``selection.min_stability`` stable, ranked by the mean of
their pooled Calinski-Harabasz and pooled neighbour-agreement ranks
(:func:`rule_scores` says why). A winner less stable than that is reported
as no stable clustering: on structureless data K-Means resamples at ARI
0.09, on the study's FMA table at 0.44.

Labels never enter a rule. Where the data has them, the oracle (best mean
ARI) and each pick's regret are printed beside the picks, for evaluation.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from musicvae.clustering import NOISE, ari_of_codes, mean_pairwise_ari
from musicvae.config import SelectionConfig
from musicvae.disentanglement import ACTIVE_THRESHOLD
from musicvae.metrics import DEGENERATE_SHARE, sample_rows

INPUTS = "inputs"
RULES = ("combined", "pooled_calinski_harabasz", "pooled_neighbours", "pooled_silhouette", "stability", "consensus", "input_silhouette", "objective")


def content_key(array: np.ndarray) -> str:
    """The same embedding (the clusterers of one model and seed) is one space, however many trials share it."""
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.tobytes() + str(array.shape).encode()).hexdigest()[:16]


def input_space(name: str) -> str:
    """The name of an input's space: 'inputs' for the MFCC statistics (or a table's columns), 'inputs:musicnn_msd' for another input."""
    return INPUTS if name == "mfcc" else f"{INPUTS}:{name}"


def build_spaces(inputs: dict[str, np.ndarray], embeddings: list[np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The shared spaces on the sampled rows: each z-scored input (by name, see :func:`input_space`), then each distinct
    embedding's active dimensions, z-scored.

    Dimensions whose posterior mean hardly varies (Var <= 0.01, the active-unit
    threshold) are dropped before z-scoring: scaled up to unit variance, the
    noise of a collapsed unit would outweigh the dimensions that carry
    structure. An embedding with no active dimension adds no space.
    """
    spaces: dict[str, np.ndarray] = {}
    seen = set()
    for name, values in inputs.items():
        spaces[input_space(name)] = StandardScaler().fit_transform(values[rows])
        seen.add(content_key(values))
    for embedding in embeddings:
        key = content_key(embedding)
        if key in seen:
            continue
        seen.add(key)
        active = embedding.var(axis=0) > ACTIVE_THRESHOLD
        if active.any():
            spaces[key] = StandardScaler().fit_transform(embedding[rows][:, active])
    return spaces


def _onehot(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster codes 0..k-1 per point (-1 for noise) and the n x k one-hot matrix (a zero row for noise)."""
    found = labels != NOISE
    codes = np.full(len(labels), -1)
    _, codes[found] = np.unique(labels[found], return_inverse=True)
    onehot = np.zeros((len(labels), codes.max() + 1), np.float32)
    onehot[found, codes[found]] = 1.0
    return codes, onehot


def _silhouette(sums: np.ndarray, codes: np.ndarray) -> float:
    """Mean silhouette from each point's summed distances to each cluster (n x k); singletons score 0, as in sklearn.

    Noise points belong to no cluster (they are in no point's a or b) and
    count 0 in the mean, like a singleton, so a clusterer cannot look tidy by
    calling the hard half of the tracks noise.
    """
    found = codes >= 0
    share = found.mean()
    sums, codes = sums[found].astype(np.float64), codes[found]
    sizes = np.bincount(codes, minlength=sums.shape[1]).astype(np.float64)
    own = sizes[codes]
    rows = np.arange(len(codes))
    a = sums[rows, codes] / np.maximum(own - 1, 1)
    means = sums / sizes
    means[rows, codes] = np.inf
    b = means.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(own > 1, (b - a) / np.maximum(a, b), 0.0)
    return float(np.nan_to_num(s).mean() * share)


SPACE_SCORES = ("silhouette", "calinski_harabasz", "neighbours")
NEIGHBOURS = 10  # the neighbourhood whose agreement with a clustering is scored


def space_scores(clusterings: dict[str, np.ndarray], spaces: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    """Silhouette, Calinski-Harabasz and neighbour agreement of every clustering (on the sampled rows) in every space.

    Returns a trials x spaces table per score in ``SPACE_SCORES``. ``neighbours``
    is the connectivity idea of Handl, Knowles & Kell (2005), chance-corrected:
    the share of each point's ``NEIGHBOURS`` nearest neighbours in the space
    that share its cluster, minus the share expected from the cluster sizes
    alone (so one giant cluster scores about 0). Unlike the two centroid
    indices it does not favour the round clusters K-Means makes.

    Noise points are in no cluster and score 0 (they scale the scores by the
    share of points clustered); a clustering with fewer than two clusters
    among the rest (or one per point) is NaN there.

    The silhouettes are computed here rather than by sklearn because a hard
    grid scores thousands of (clustering, space) pairs: sklearn reduces the
    distance matrix anew for every call (about 25 ms at 1500 rows), while one
    product of the space's distance matrix with all clusterings' one-hot
    matrices side by side gives every point's distance sums to every cluster
    of every clustering at once, and one more product every cluster's
    coordinate sums for Calinski-Harabasz (the tests compare both with sklearn).
    """
    silhouettes = np.full((len(clusterings), len(spaces)), np.nan)
    harabasz, neighbours = silhouettes.copy(), silhouettes.copy()
    scored = {}
    for i, labels in enumerate(clusterings.values()):
        codes, onehot = _onehot(labels)
        if 2 <= onehot.shape[1] < (codes >= 0).sum():
            scored[i] = (codes, onehot)
    if scored:
        bounds = np.cumsum([0] + [onehot.shape[1] for _, onehot in scored.values()])
        onehots = np.hstack([onehot for _, onehot in scored.values()])
        for j, x in enumerate(spaces.values()):
            x = x.astype(np.float32)
            sums = pairwise_distances(x, n_jobs=1) @ onehots
            centroid_sums, squares = (onehots.T @ x).astype(np.float64), (x.astype(np.float64) ** 2).sum(axis=1)
            nearest = NearestNeighbors(n_neighbors=min(NEIGHBOURS, len(x) - 1) + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
            for (i, (codes, _)), lo, hi in zip(scored.items(), bounds[:-1], bounds[1:]):
                silhouettes[i, j] = _silhouette(sums[:, lo:hi], codes)
                harabasz[i, j] = _calinski_harabasz(centroid_sums[lo:hi], squares, codes)
                neighbours[i, j] = _neighbour_agreement(nearest, codes)
    frame = lambda values: pd.DataFrame(values, index=list(clusterings), columns=list(spaces))  # noqa: E731
    return {"silhouette": frame(silhouettes), "calinski_harabasz": frame(harabasz), "neighbours": frame(neighbours)}


def _neighbour_agreement(nearest: np.ndarray, codes: np.ndarray) -> float:
    """Share of (point, neighbour) pairs in one cluster, minus its expectation under the cluster sizes; noise pairs never agree."""
    agree = (codes[nearest] == codes[:, None]) & (codes[:, None] >= 0)
    shares = np.bincount(codes[codes >= 0]) / len(codes)
    return float(agree.mean() - (shares**2).sum())


def _calinski_harabasz(sums: np.ndarray, squares: np.ndarray, codes: np.ndarray) -> float:
    """Calinski-Harabasz of the non-noise points from each cluster's coordinate sums (k x d) and each point's squared norm,
    times the share of points in a cluster (noise discounts it, as it does the silhouette)."""
    found = codes >= 0
    sizes = np.bincount(codes[found], minlength=len(sums)).astype(np.float64)
    n, k = sizes.sum(), len(sizes)
    centre = sums.sum(axis=0) / n
    between = float((sizes * ((sums / sizes[:, None] - centre) ** 2).sum(axis=1)).sum())
    within = float(squares[found].sum() - ((sums**2).sum(axis=1) / sizes).sum())
    score = 1.0 if within <= 0 else between * (n - k) / (within * (k - 1))
    return score * found.mean()


def pooled_rank(scores: pd.DataFrame) -> pd.Series:
    """Each clustering's percentile rank within each space (1 = best there), averaged over the spaces; undefined ranks last."""
    return scores.rank(axis=0, pct=True).fillna(0.0).mean(axis=1)


def consensus(clusterings: dict[str, np.ndarray], method_of: dict[str, str]) -> dict[str, float]:
    """Each clustering's mean ARI with the clusterings of every other method (its own seeds are stability, not consensus)."""
    names = list(clusterings)
    codes = [np.unique(clusterings[name], return_inverse=True)[1] for name in names]
    agreement = np.full((len(names), len(names)), np.nan)
    for i, j in itertools.combinations(range(len(names)), 2):
        if method_of[names[i]] != method_of[names[j]]:
            agreement[i, j] = agreement[j, i] = ari_of_codes(codes[i], codes[j])
    with np.errstate(all="ignore"):
        means = [np.nanmean(row) if np.isfinite(row).any() else math.nan for row in agreement]
    return dict(zip(names, means))


@dataclass(frozen=True)
class Selection:
    """Every rule's score per method, the chosen rule's winner, and (with labels) the oracle."""

    scores: pd.DataFrame  # one row per method: the rules' scores, stability parts, degenerate, ari/nmi means if labelled
    rule: str
    winner: str | None
    picks: dict[str, str]  # rule -> its pick
    stable: bool
    min_stability: float
    n_spaces: int
    n_rows: int
    seconds: float = 0.0

    @property
    def oracle(self) -> str | None:
        if "ari" not in self.scores or self.scores["ari"].isna().all():
            return None
        return str(self.scores.loc[self.scores["ari"].idxmax(), "method"])

    def regret(self, method: str | None) -> float:
        """The oracle's mean ARI minus the method's (labels: evaluation only); NaN without labels."""
        if method is None or self.oracle is None:
            return math.nan
        ari = self.scores.set_index("method")["ari"]
        return float(ari.max() - ari[method])

    def regret_se(self, method: str | None) -> float:
        """The standard error of :meth:`regret` from the seeds' spread: sqrt(sd_o^2/n_o + sd_m^2/n_m); NaN without labels or seeds.

        A regret within about two of these is not a measured loss: with three
        seeds, which method is the oracle is itself uncertain by that much.
        """
        if method is None or self.oracle is None or "ari_sd" not in self.scores:
            return math.nan
        oracle, pick = self.row(self.oracle), self.row(method)
        return float(math.sqrt(oracle["ari_sd"] ** 2 / oracle["n"] + pick["ari_sd"] ** 2 / pick["n"]))

    def row(self, method: str) -> pd.Series:
        return self.scores.set_index("method").loc[method]

    def summary(self) -> str:
        """What the console and the report say: which rule chose, what, how stable, and (with labels) at what regret."""
        if self.winner is None:
            return "Selection: no finished, non-degenerate clustering to select from."
        win = self.row(self.winner)
        lines = [
            f"Selected by the '{self.rule}' rule (label-free; {self.n_spaces} shared spaces, {self.n_rows} rows): {self.winner}",
            f"  stability {win['stability']:.3f} (seeds agree {_fmt(win['seed_agreement'])}, resampled {_fmt(win['resample_stability'])})"
            + ("" if self.stable else f": below {self.min_stability:g}, so NO STABLE CLUSTERING: the data may hold no grouping this sweep can find"),
        ]
        if self.oracle is not None:
            oracle = self.row(self.oracle)
            lines[0] += f": ARI {win['ari']:.4f}, NMI {win['nmi']:.4f}"
            lines.append(
                f"  oracle (best mean ARI, uses labels): {self.oracle}: "
                f"ARI {oracle['ari']:.4f} ± {_fmt(oracle.get('ari_sd', math.nan))} over seeds, NMI {oracle['nmi']:.4f}; "
                f"regret {self.regret(self.winner):.4f} (standard error {_fmt(self.regret_se(self.winner))})"
            )
        others = [f"{rule}: {pick}" + (f" (regret {self.regret(pick):.4f})" if self.oracle else "") for rule, pick in self.picks.items() if rule != self.rule]
        if others:
            lines.append("  other rules' picks: " + "; ".join(others))
        degenerate = self.scores.loc[self.scores["degenerate"], "method"].tolist()
        if degenerate:
            lines.append(f"  not selectable, {DEGENERATE_SHARE:.0%}+ of the tracks in one cluster: {', '.join(degenerate)}")
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def rule_scores(methods: pd.DataFrame, min_stability: float) -> pd.DataFrame:
    """Each rule's score per method (higher is better for every rule), from the per-method parts.

    ``combined``: the mean of the pooled Calinski-Harabasz and pooled
    neighbour-agreement ranks, over the methods at least ``min_stability``
    stable (every method, if none is), the rest ranked below them. On the
    labelled collections of bench/selection.py those two were the indices
    whose rank correlation with ARI never fell below 0.75; combined, with the
    stability filter, it has the lowest mean regret of the rules (0.046;
    pooled CH alone 0.052, neighbours alone 0.058, pooled silhouette 0.204)
    and a correlation of 0.74-0.93 on each. Pooled silhouette fell to 0.3-0.4
    on two collections (it rewards fewer, rounder groups and DBSCAN's dense
    cores). Stability cannot rank (a collapsed latent is very stable) but
    tells structure from none.
    """
    scores = pd.DataFrame(index=methods.index)
    for rule in RULES[1:]:
        scores[rule] = methods[rule]
    stable = methods["stability"] >= min_stability
    if not stable[~methods["degenerate"]].any():
        stable[:] = True
    pooled = (methods["pooled_calinski_harabasz"] + methods["pooled_neighbours"]) / 2
    scores["combined"] = pooled.where(stable, pooled - 1.0)  # ranks are in [0, 1]: an unstable method ranks below every stable one
    return scores


def select_methods(
    table: pd.DataFrame,
    clusters: dict[str, np.ndarray],
    embeddings: dict[str, np.ndarray],
    inputs: dict[str, np.ndarray],
    cfg: SelectionConfig,
    objective: str = "silhouette",
    mode: str = "max",
) -> Selection:
    """Score every finished trial's clustering and pick a method by ``cfg.rule``.

    ``table`` is the sweep's trial table (:func:`musicvae.leaderboard.trial_table`);
    ``clusters`` and ``embeddings`` map its trial names to their cluster labels
    and embeddings (all tracks, in the data's order); ``inputs`` are the
    standardised input vectors by name (``FeatureSet.inputs``; empty: the embeddings' spaces alone).
    """
    start = time.perf_counter()
    ok = table[(table["status"] == "OK") & table["trial"].isin(clusters)].copy()
    if ok.empty:
        return Selection(pd.DataFrame(columns=["method", "degenerate", "stability"]), cfg.rule, None, {}, False, cfg.min_stability, 0, 0)
    n = len(next(iter(clusters.values())))
    rows = sample_rows(n, cfg.sample, cfg.seed)
    spaces = build_spaces(inputs, [embeddings[t] for t in ok["trial"] if t in embeddings], rows)
    sampled = {t: clusters[t][rows] for t in ok["trial"]}
    for score, table_ in space_scores(sampled, spaces).items():
        ok[f"pooled_{score}"] = ok["trial"].map(pooled_rank(table_))
    ok["noise_in_sample"] = [float(np.mean(sampled[t] == NOISE)) for t in ok["trial"]]
    ok["consensus"] = ok["trial"].map(consensus({t: clusters[t] for t in ok["trial"]}, dict(zip(ok["trial"], ok["method"]))))
    direction = 1.0 if mode == "max" else -1.0
    ok["objective"] = direction * ok[objective].astype(float) if objective in ok else math.nan

    columns = [
        *(f"pooled_{score}" for score in SPACE_SCORES),
        "consensus",
        "objective",
        "input_silhouette",
        "resample_stability",
        "largest_cluster",
        "noise_in_sample",
    ]
    columns += [c for c in ("ari", "nmi") if c in ok and ok[c].notna().any()]
    ok = ok.assign(**{c: ok[c].astype(float) for c in columns if c in ok})
    grouped = ok.groupby("method", sort=False)
    methods = grouped[[c for c in columns if c in ok]].mean()
    methods.insert(0, "n", grouped.size())
    if "ari" in methods:
        methods["ari_sd"] = grouped["ari"].std()  # the seeds' spread: the regret's uncertainty (Selection.regret_se)
    methods["seed_agreement"] = [mean_pairwise_ari([clusters[t] for t in group["trial"]]) for _, group in grouped]
    methods["stability"] = methods[["seed_agreement", "resample_stability"]].min(axis=1, skipna=True)
    methods["degenerate"] = methods["largest_cluster"] >= DEGENERATE_SHARE
    scores = rule_scores(methods, cfg.min_stability)
    for rule in RULES:
        methods[f"score_{rule}"] = scores[rule]
    return choose(methods.reset_index(), cfg, len(spaces), len(rows), time.perf_counter() - start)


def choose(methods: pd.DataFrame, cfg: SelectionConfig, n_spaces: int, n_rows: int, seconds: float = 0.0) -> Selection:
    """Every rule's pick from the per-method scores (``selection.csv`` holds them), and the configured rule's winner.

    Degenerate methods are never picked; ties go to the better pooled silhouette.
    """
    if methods.empty or f"score_{cfg.rule}" not in methods:  # no trial finished
        return Selection(methods, cfg.rule, None, {}, False, cfg.min_stability, n_spaces, n_rows, seconds)
    candidates = methods[~methods["degenerate"].astype(bool)]
    picks = {}
    for rule in RULES:
        ranked = candidates.dropna(subset=[f"score_{rule}"]).sort_values([f"score_{rule}", "score_pooled_silhouette"], ascending=False, kind="stable")
        if len(ranked):
            picks[rule] = str(ranked.iloc[0]["method"])
    winner = picks.get(cfg.rule)
    stable = winner is not None and bool(methods.set_index("method").loc[winner, "stability"] >= cfg.min_stability)
    methods = methods.sort_values(f"score_{cfg.rule}", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    return Selection(methods, cfg.rule, winner, picks, stable, cfg.min_stability, n_spaces, n_rows, seconds)
