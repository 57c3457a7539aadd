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
  stability (two 80 % subsamples, :func:`musicvae.clustering.clusterers.resample_stability`).
  ARI is already corrected for chance, which is what Lange et al.'s
  normalisation by random labellings does for their misclassification rate,
  so k = 2 is not favoured by construction. Stability alone cannot see too
  few clusters, so it filters, it does not rank;
* consensus: the mean ARI of a clustering with the other methods'; and
  coassociation, its pairs against the ensemble's co-association (DISCOTEC,
  Ohl & Lindsten 2025);
* gap: the gap statistic (Tibshirani et al. 2001) in the input spaces, a baseline.

k is one of a method's settings (a method is one configuration without its
seed), so a rule chooses k and the representation together. The default,
``combined``, came from the labelled collections of ``bench/selection.py``
with k searched (a rule validated on one collection is not validated): the
methods at least ``selection.candidate_stability`` stable, ranked by their
pooled neighbour agreement (:func:`rule_scores` says why). A winner less
stable than ``selection.min_stability`` is reported as no stable clustering:
structureless data's groupings do not come back when it is resampled.

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

from musicvae.clustering.clusterers import NOISE, ari_of_codes, mean_pairwise_ari
from musicvae.config.params import TrialParams
from musicvae.config.sections import SelectionConfig
from musicvae.evaluation.disentanglement import ACTIVE_THRESHOLD
from musicvae.evaluation.leaderboard import TrialStatus
from musicvae.evaluation.metrics import DEGENERATE_SHARE, sample_rows

INPUTS = "inputs"
RULES = (
    "combined",
    "ch_neighbours",
    "pooled_calinski_harabasz",
    "pooled_neighbours",
    "pooled_silhouette",
    "stability",
    "consensus",
    "coassociation",
    "gap",
    "input_silhouette",
    "objective",
)
GAP_REFERENCES = 5  # uniform reference sets per k for the gap statistic


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
    distance matrix anew for every call, while one
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


def coassociation(clusterings: dict[str, np.ndarray], method_of: dict[str, str]) -> dict[str, float]:
    """Each clustering's agreement with the ensemble's co-association (DISCOTEC, Ohl & Lindsten 2025).

    The ensemble's co-association of two tracks is the share of the methods
    (each the mean over its seeds) that put them in one cluster; a
    clustering's score is the correlation of its own co-association (1 for
    the pairs it puts together, 0 for the rest, noise with nothing) with the
    ensemble's over all pairs of distinct tracks. Pairs, not centroids: no
    bias towards round clusters, and a k that splits or merges what most
    methods keep apart or together is penalised on every pair it moves.
    """
    names = list(clusterings)
    n = len(clusterings[names[0]])
    onehots = {name: _onehot(labels)[1] for name, labels in clusterings.items()}
    methods: dict[str, list[str]] = {}
    for name in names:
        methods.setdefault(method_of[name], []).append(name)
    ensemble = np.zeros((n, n))
    for members in methods.values():
        for name in members:
            ensemble += onehots[name] @ onehots[name].T / (len(members) * len(methods))
    off = ensemble.sum() - np.trace(ensemble)
    pairs = n * (n - 1)
    mean_y, var_y = off / pairs, ((ensemble**2).sum() - (np.diag(ensemble) ** 2).sum()) / pairs - (off / pairs) ** 2
    scores = {}
    for name in names:
        h = onehots[name]
        sizes = h.sum(axis=0)
        together = float((sizes**2).sum() - sizes.sum())  # ordered pairs of distinct tracks in one cluster (noise rows are zero)
        mean_x = together / pairs
        xy = float(np.einsum("ic,ij,jc->", h, ensemble, h) - (h.sum(axis=1) * np.diag(ensemble)).sum()) / pairs
        denominator = math.sqrt(mean_x * (1 - mean_x) * var_y)
        scores[name] = (xy - mean_x * mean_y) / denominator if denominator > 0 else math.nan
    return scores


def gap(clusterings: dict[str, np.ndarray], spaces: dict[str, np.ndarray], seed: int = 0) -> dict[str, float]:
    """The gap statistic (Tibshirani, Walther & Hastie 2001) of each clustering, averaged over the input spaces: a baseline.

    Gap = E*[log W_k] - log W_k, where W_k is the clustering's within-cluster
    sum of squares and E* its expectation for K-Means on ``GAP_REFERENCES``
    uniform samples from the box of the space's principal components (their
    "b" reference). Only the input spaces: references for every embedding of
    a large sweep would cost more than the rest of the selection.
    """
    from sklearn.cluster import KMeans

    scores = {name: [] for name in clusterings}
    for space, x in spaces.items():
        if not space.startswith(INPUTS):
            continue
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        rotated = x @ vt.T
        low, high = rotated.min(axis=0), rotated.max(axis=0)
        rng = np.random.default_rng(seed)
        references = [rng.uniform(low, high, size=rotated.shape) @ vt for _ in range(GAP_REFERENCES)]
        expected: dict[int, float] = {}
        for name, labels in clusterings.items():
            codes, onehot = _onehot(labels)
            k = onehot.shape[1]
            if not 2 <= k < len(x):
                scores[name].append(math.nan)
                continue
            if k not in expected:
                fits = [KMeans(k, n_init=1, random_state=seed).fit(r) for r in references]
                expected[k] = float(np.mean([math.log(f.inertia_) for f in fits]))
            sums, found = onehot.T @ x, codes >= 0
            within = float((x[found] ** 2).sum() - ((sums**2).sum(axis=1) / onehot.sum(axis=0)).sum())
            scores[name].append(expected[k] - math.log(max(within, 1e-12)))
    return {name: float(np.mean(values)) if values else math.nan for name, values in scores.items()}


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
    n_labels: int | None = None  # the labels' count, shown beside the chosen k for evaluation only; None without labels

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
        if pd.notna(win.get("n_clusters")):
            label_count = f" (label count {self.n_labels}, evaluation only)" if self.n_labels else ""
            lines.insert(1, f"  k = {int(win['n_clusters'])} chosen{label_count}")
        if self.oracle is not None:
            oracle = self.row(self.oracle)
            lines[0] += f": ARI {win['ari']:.4f}, NMI {win['nmi']:.4f}"
            lines.append(
                f"  oracle (best mean ARI, uses labels): {self.oracle}: "
                f"ARI {oracle['ari']:.4f} ± {_fmt(oracle.get('ari_sd', math.nan))} over seeds, NMI {oracle['nmi']:.4f}; "
                f"regret {self.regret(self.winner):.4f} (standard error {_fmt(self.regret_se(self.winner))})"
            )
        by_pick: dict[str, list[str]] = {}  # each pick once, with the rules that chose it
        for rule, pick in self.picks.items():
            if rule != self.rule:
                by_pick.setdefault(pick, []).append(rule)
        others = [f"{', '.join(rules)}: {pick}" + (f" (regret {self.regret(pick):.4f})" if self.oracle else "") for pick, rules in by_pick.items()]
        if others:
            lines.append("  other rules' picks: " + "; ".join(others))
        degenerate = self.scores.loc[self.scores["degenerate"], "method"].tolist()
        if degenerate:
            lines.append(f"  not selectable, {DEGENERATE_SHARE:.0%}+ of the tracks in one cluster: {', '.join(degenerate)}")
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def k_curve(selection: Selection) -> pd.DataFrame:
    """The winner's representation and clusterer at every k the sweep tried: each rule's score, the stability and (with labels,
    for evaluation) ARI and NMI, by k; ``chosen`` marks the pick. Empty where k was not searched."""
    scores = selection.scores
    if selection.winner is None or "family" not in scores or "n_clusters" not in scores:
        return pd.DataFrame()
    family = scores.set_index("method").loc[selection.winner, "family"]
    rows = scores[(scores["family"] == family) & scores["n_clusters"].notna()].sort_values("n_clusters")
    if rows["n_clusters"].nunique() < 2:
        return pd.DataFrame()
    rules = [f"score_{rule}" for rule in RULES if f"score_{rule}" in rows and rule != "stability"]  # the stability rule is the stability column
    columns = ["n_clusters", *rules, "stability", *(c for c in ("ari", "nmi") if c in rows)]
    curve = rows[columns].rename(columns=lambda c: c.removeprefix("score_")).reset_index(drop=True)
    curve["chosen"] = rows["method"].to_numpy() == selection.winner
    return curve.astype({"n_clusters": int})


def rule_scores(methods: pd.DataFrame, cfg: SelectionConfig) -> pd.DataFrame:
    """Each rule's score per method (higher is better for every rule), from the per-method parts.

    ``combined``, the default: the pooled neighbour-agreement rank, over the
    methods at least ``candidate_stability`` stable (every method, if none
    is), the rest ranked below them. Neighbour agreement asks of a grouping
    what a listener asks of a playlist: are a track's nearest neighbours, in
    the inputs and in every embedding, in its group? It has no centroid, so it
    does not favour the few round groups that Calinski-Harabasz and the
    silhouette favour, which is what lets it compare groupings of different k;
    chance-corrected by the cluster sizes, it does not reward one big group.
    Left alone it can prefer a fine split that no seed or resample repeats:
    stability filters it. Stability does not rank (a collapsed latent is very
    stable, and few groups are stable by construction). The README
    ("Results: choosing without labels", from bench/selection.py) gives each
    rule's regret on the collections this was chosen on.

    ``ch_neighbours``, the default until k was searched (kept as the
    baseline): the mean of the pooled Calinski-Harabasz and neighbour ranks
    over the methods at least ``min_stability`` stable.
    """
    scores = pd.DataFrame(index=methods.index)
    for rule in RULES[2:]:
        scores[rule] = methods[rule]
    scores["combined"] = _stable_first(methods, methods["pooled_neighbours"], cfg.candidate_stability)
    ch_neighbours = (methods["pooled_calinski_harabasz"] + methods["pooled_neighbours"]) / 2
    scores["ch_neighbours"] = _stable_first(methods, ch_neighbours, cfg.min_stability)
    return scores


def _stable_first(methods: pd.DataFrame, ranks: pd.Series, threshold: float) -> pd.Series:
    """Ranks (in [0, 1]) with the methods less stable than ``threshold`` moved below every other; unchanged if none is that stable."""
    stable = methods["stability"] >= threshold
    if not stable[~methods["degenerate"]].any():
        return ranks
    return ranks.where(stable, ranks - 1.0)


def select_methods(
    table: pd.DataFrame,
    clusters: dict[str, np.ndarray],
    embeddings: dict[str, np.ndarray],
    inputs: dict[str, np.ndarray],
    cfg: SelectionConfig,
    objective: str = "silhouette",
    mode: str = "max",
    n_labels: int | None = None,
) -> Selection:
    """Score every finished trial's clustering and pick a method by ``cfg.rule``.

    ``table`` is the sweep's trial table (:func:`musicvae.evaluation.leaderboard.trial_table`);
    ``clusters`` and ``embeddings`` map its trial names to their cluster labels
    and embeddings (all tracks, in the data's order); ``inputs`` are the
    standardised input vectors by name (``FeatureSet.inputs``; empty: the embeddings' spaces alone).
    """
    start = time.perf_counter()
    ok = table[(table["status"] == TrialStatus.OK) & table["trial"].isin(clusters)].copy()
    if ok.empty:
        empty = pd.DataFrame(columns=["method", "degenerate", "stability"])
        return Selection(scores=empty, rule=cfg.rule, winner=None, picks={}, stable=False, min_stability=cfg.min_stability, n_spaces=0, n_rows=0)
    n = len(next(iter(clusters.values())))
    rows = sample_rows(n, cfg.sample, cfg.seed)
    spaces = build_spaces(inputs, [embeddings[t] for t in ok["trial"] if t in embeddings], rows)
    sampled = {t: clusters[t][rows] for t in ok["trial"]}
    for score, table_ in space_scores(sampled, spaces).items():
        ok[f"pooled_{score}"] = ok["trial"].map(pooled_rank(table_))
    ok["noise_in_sample"] = [float(np.mean(sampled[t] == NOISE)) for t in ok["trial"]]
    settings = [c for c in ok.columns if c in TrialParams.model_fields and c not in ("seed", "n_clusters")]
    ok["family"] = ok[settings].astype(str).agg("|".join, axis=1)  # the representation and clusterer, whatever the k
    method_of = dict(zip(ok["trial"], ok["method"]))
    ok["consensus"] = ok["trial"].map(consensus({t: clusters[t] for t in ok["trial"]}, method_of))
    ok["coassociation"] = ok["trial"].map(coassociation(sampled, method_of))
    ok["gap"] = ok["trial"].map(gap(sampled, spaces, cfg.seed))
    direction = 1.0 if mode == "max" else -1.0
    ok["objective"] = direction * ok[objective].astype(float) if objective in ok else math.nan

    columns = [
        *(f"pooled_{score}" for score in SPACE_SCORES),
        "consensus",
        "coassociation",
        "gap",
        "objective",
        "input_silhouette",
        "resample_stability",
        "largest_cluster",
        "noise_in_sample",
    ]
    columns += [c for c in ("ari", "nmi", "n_clusters") if c in ok and pd.to_numeric(ok[c], errors="coerce").notna().any()]
    ok = ok.assign(**{c: pd.to_numeric(ok[c], errors="coerce") for c in columns if c in ok})
    grouped = ok.groupby("method", sort=False)
    methods = grouped[[c for c in columns if c in ok]].mean()
    methods.insert(0, "n", grouped.size())
    methods["family"] = grouped["family"].first()
    if "ari" in methods:
        methods["ari_sd"] = grouped["ari"].std()  # the seeds' spread: the regret's uncertainty (Selection.regret_se)
    methods["seed_agreement"] = [mean_pairwise_ari([clusters[t] for t in group["trial"]]) for _, group in grouped]
    methods["stability"] = methods[["seed_agreement", "resample_stability"]].min(axis=1, skipna=True)
    methods["degenerate"] = methods["largest_cluster"] >= DEGENERATE_SHARE
    scores = rule_scores(methods, cfg)
    for rule in RULES:
        methods[f"score_{rule}"] = scores[rule]
    return choose(methods.reset_index(), cfg, len(spaces), len(rows), time.perf_counter() - start, n_labels)


def choose(methods: pd.DataFrame, cfg: SelectionConfig, n_spaces: int, n_rows: int, seconds: float = 0.0, n_labels: int | None = None) -> Selection:
    """Every rule's pick from the per-method scores (``selection.csv`` holds them), and the configured rule's winner.

    Degenerate methods are never picked; ties go to the better pooled silhouette.
    """
    if methods.empty or f"score_{cfg.rule}" not in methods:  # no trial finished
        return Selection(
            scores=methods, rule=cfg.rule, winner=None, picks={}, stable=False, min_stability=cfg.min_stability,
            n_spaces=n_spaces, n_rows=n_rows, seconds=seconds, n_labels=n_labels,
        )  # fmt: skip
    candidates = methods[~methods["degenerate"].astype(bool)]
    picks = {}
    for rule in RULES:
        ranked = candidates.dropna(subset=[f"score_{rule}"]).sort_values([f"score_{rule}", "score_pooled_silhouette"], ascending=False, kind="stable")
        if len(ranked):
            picks[rule] = str(ranked.iloc[0]["method"])
    winner = picks.get(cfg.rule)
    stable = winner is not None and bool(methods.set_index("method").loc[winner, "stability"] >= cfg.min_stability)
    methods = methods.sort_values(f"score_{cfg.rule}", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    return Selection(
        scores=methods, rule=cfg.rule, winner=winner, picks=picks, stable=stable, min_stability=cfg.min_stability,
        n_spaces=n_spaces, n_rows=n_rows, seconds=seconds, n_labels=n_labels,
    )  # fmt: skip
