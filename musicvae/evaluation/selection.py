"""Choosing a method without labels, and the input it is built on: the rules, and the :class:`Selection` they make.

Every finished clustering is scored in one shared set of spaces
(:mod:`musicvae.evaluation.space_scores`): the standardised inputs and every
distinct embedding. Its silhouette, Calinski-Harabasz and neighbour agreement
are ranked within each space and the ranks averaged over the spaces (the rank
pooling of ACE, Wang & Ye 2024). Beside that:

* stability: a grouping the data holds comes back when the data or the seed
  changes (Ben-Hur et al. 2002, Lange et al. 2004). Per method, the lower of
  the mean ARI between its seeds' clusterings and its trials' resample
  stability (two 80 % subsamples, :func:`musicvae.clustering.clusterers.resample_stability`).
  ARI is already corrected for chance, so k = 2 is not favoured by
  construction. Stability alone cannot see too few clusters, so it filters,
  it does not rank;
* consensus: the mean ARI of a clustering with the other methods'; and
  coassociation, its pairs against the ensemble's co-association (DISCOTEC,
  Ohl & Lindsten 2025);
* gap: the gap statistic (Tibshirani et al. 2001) in the input spaces, a baseline.

k is one of a method's settings (a method is one configuration without its
seed), so a rule chooses k and the representation together. The default,
``per_input``, chooses in two steps (:func:`per_input_scores` says why):
within each input (MFCC statistics, each musicnn model's features), the
``combined`` rule in that input's own spaces; then, between the inputs'
winners, the one whose grouping follows the neighbourhoods of all the inputs
furthest beyond what K-Means finds in a structureless Gaussian of each input's
covariance, each input counted once. With one input it is ``combined``. A winner less stable than
``selection.min_stability`` is reported as no stable clustering:
structureless data's groupings do not come back when it is resampled.

Labels never enter a rule. Where the data has them, the oracle (best mean
ARI) and each pick's regret are printed beside the picks, for evaluation.
"""

from __future__ import annotations

import math
import time
import typing
from dataclasses import dataclass

import numpy as np
import pandas as pd

from musicvae.clustering.clusterers import NOISE, mean_pairwise_ari
from musicvae.config.params import TrialParams
from musicvae.config.sections import SelectionConfig, SelectionRule
from musicvae.evaluation.leaderboard import TrialStatus
from musicvae.evaluation.metrics import DEGENERATE_SHARE, sample_rows
from musicvae.evaluation.space_scores import (
    SPACE_SCORES,
    Spaces,
    build_spaces,
    coassociation,
    consensus,
    gap,
    input_space,
    null_neighbour_agreement,
    pooled_rank,
    same_inputs,
    space_scores,
)

RULES: tuple[str, ...] = typing.get_args(SelectionRule)  # every rule, in the order tables print them: the default first
# The rules whose score is one per-method column of the same name (the others combine columns: rule_scores).
COLUMN_RULES = (
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
ADMISSIBLE = 0.25  # per_input: an input takes part in comparing the inputs if its winner's structure beyond the null is this share of the best's
INPUT_RANK_STEP = 3.0  # per_input's scores: each input's methods a step above the next input's (within one, scores span at most 2)


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

    def ranked(self, methods: pd.DataFrame) -> pd.DataFrame:
        """A method table (one row per method) in the order this selection ranks it: the winner first, as :func:`choose`
        ranks (degenerate methods after the rest, ties to the better pooled silhouette); methods it never scored last."""
        scores = self.scores.set_index("method") if "method" in self.scores else pd.DataFrame()
        if f"score_{self.rule}" not in scores or methods.empty:
            return methods
        key = pd.DataFrame({
            "degenerate": methods["method"].map(scores["degenerate"].astype(bool)).fillna(True),
            "score": methods["method"].map(scores[f"score_{self.rule}"]),
            "tie": methods["method"].map(scores["score_pooled_silhouette"]),
        })  # fmt: skip
        order = key.assign(score=key["score"].where(~key["degenerate"])).sort_values(["score", "tie"], ascending=False, na_position="last", kind="stable")
        return methods.loc[order.index].reset_index(drop=True)

    def representations(self) -> pd.DataFrame:
        """One row per input, best first: its best method under the rule, that method's k, its structure shared by the
        inputs (what ``per_input`` compares inputs by) and beyond the null in its own input, the rule's score, its stability
        and (labels: evaluation only) ARI and NMI; ``chosen`` marks the winner's input. Empty for a selection.csv written
        before inputs were compared."""
        scores = self.scores
        if self.winner is None or "input" not in scores:
            return pd.DataFrame()
        score = f"score_{self.rule}"
        ranked = self.ranked(scores)
        best = ranked[~ranked["degenerate"].astype(bool) & ranked[score].notna()].groupby("input", sort=False).head(1)
        columns = [
            "input",
            "method",
            *(c for c in ("n_clusters", "shared_structure", "beyond_null") if c in best),
            score,
            "stability",
            *(c for c in ("ari", "nmi") if self.oracle),
        ]
        table = best[columns].rename(columns={score: "score"}).reset_index(drop=True)
        return table.assign(chosen=table["method"] == self.winner)

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

    ``combined``: the pooled neighbour-agreement rank, over the methods at
    least ``candidate_stability`` stable (every method, if none is), the
    rest ranked below them. Neighbour agreement asks of a grouping what a
    listener asks of a playlist: are a track's nearest neighbours, in the
    inputs and in every embedding, in its group? It has no centroid, so it
    does not favour the few round groups that Calinski-Harabasz and the
    silhouette favour, which is what lets it compare groupings of different
    k; chance-corrected by the cluster sizes, it does not reward one big
    group. Left alone it can prefer a fine split that no seed or resample
    repeats: stability filters it. Stability does not rank (a collapsed
    latent is very stable, and few groups are stable by construction).

    ``per_input``, the default: ``combined`` within each input, the inputs
    ordered by their winners (:func:`per_input_scores`).

    ``ch_neighbours``, the default until k was searched (kept as a baseline):
    the mean of the pooled Calinski-Harabasz and neighbour ranks over the
    methods at least ``min_stability`` stable.

    The README ("Results: choosing without labels", from bench/selection.py)
    gives each rule's regret on the labelled collections.
    """
    scores = pd.DataFrame(index=methods.index)
    for rule in COLUMN_RULES:
        scores[rule] = methods[rule]
    scores["combined"] = _stable_first(methods, methods["pooled_neighbours"], cfg.candidate_stability)
    scores["per_input"] = per_input_scores(methods, cfg)
    ch_neighbours = (methods["pooled_calinski_harabasz"] + methods["pooled_neighbours"]) / 2
    scores["ch_neighbours"] = _stable_first(methods, ch_neighbours, cfg.min_stability)
    return scores[list(RULES)]


def per_input_scores(methods: pd.DataFrame, cfg: SelectionConfig) -> pd.Series:
    """``per_input``: the ``combined`` rule inside each input, then the inputs in the order of their winners' structure.

    Why two steps: a clustering scores best in the spaces of the input it was
    built on, so ranks pooled over every input's spaces favour the input whose
    geometry lies between the others' (musicnn's MTT features between the MFCCs'
    timbre and MSD's genre tags) and the input with the most embeddings, which
    is a fact about the inputs listed, not about the music. Within one input
    every space is that input's (``input_neighbours``: the neighbour ranks
    pooled over the input's own space and its models' embeddings), so
    ``combined`` chooses as it does on a one-input collection.

    Between the inputs' winners the criterion must belong to no input, and
    must count each input once: ``shared_structure``, the winner's neighbour
    agreement in each input's space minus what K-Means at the same k reaches
    on Gaussian data of that space's covariance
    (:func:`~musicvae.evaluation.space_scores.null_neighbour_agreement`),
    averaged over the admissible inputs. Each space is measured against its own
    structureless twin, so neither its dimension nor its spectrum counts, and
    a grouping that only its own input holds (a clustering always suits the
    space it was built in) gains in one space of several. An input is
    admissible when its own winner's structure beyond the null
    (``beyond_null``) is at least ``ADMISSIBLE`` of the best input's: an
    input of noise is its own twin, scores about 0 and is left out, so it
    changes nothing; a copy of an input is the same input. Winners at least
    ``candidate_stability`` stable come before the rest.

    Assumes the inputs describe the same tracks (one row each) and that the
    grouping wanted is the one an input holds most clearly: where two inputs
    hold two different groupings (strokes and tonics), it picks one of them.

    The score is the method's ``combined`` score within its input plus
    ``INPUT_RANK_STEP`` times the number of inputs ranked below its input.
    """
    within, winners = input_winners(methods, cfg)
    structure = methods.get("shared_structure", pd.Series(math.nan, index=methods.index))
    order = sorted(
        winners, key=lambda name: (methods.at[winners[name], "stability"] >= cfg.candidate_stability, np.nan_to_num(structure[winners[name]], nan=-np.inf)),
        reverse=True,
    )  # fmt: skip
    below = {name: len(order) - 1 - i for i, name in enumerate(order)}
    return within + methods["input"].map(below).fillna(-1).astype(float) * INPUT_RANK_STEP


def _stable_first(methods: pd.DataFrame, ranks: pd.Series, threshold: float) -> pd.Series:
    """Ranks (in [0, 1]) with the methods less stable than ``threshold`` moved below every other; unchanged if none is that stable."""
    stable = methods["stability"] >= threshold
    if not stable[~methods["degenerate"].astype(bool)].any():
        return ranks
    return ranks.where(stable, ranks - 1.0)


def input_of(table: pd.DataFrame, inputs: dict[str, np.ndarray]) -> pd.Series:
    """Each trial's input, a copy named as the input it copies; 'mfcc' where the table has no input column (one input) or
    the trial's model reads no input vector (a spectrogram model: the audio the MFCCs come from)."""
    same = same_inputs(inputs)
    names = table["input"].replace("", "mfcc") if "input" in table else pd.Series("mfcc", index=table.index)
    return names.map(lambda name: same.get(name, name))


def beyond_null(neighbours: pd.DataFrame, sampled: dict[str, np.ndarray], spaces: Spaces, seed: int) -> pd.DataFrame:
    """Each clustering's neighbour agreement in every input's space minus the null's there at its number of clusters (see
    :func:`per_input_scores`): one row per trial, one column per input; NaN for fewer than 2 clusters."""
    nulls: dict[tuple[str, int], float] = {}
    inputs = {space: name for space, name in spaces.built_on.items() if space in neighbours and space == input_space(name)}
    table = pd.DataFrame(math.nan, index=list(sampled), columns=list(inputs.values()))
    for trial, labels in sampled.items():
        k = len(np.unique(labels[labels != NOISE]))
        for space, name in inputs.items():
            if k >= 2:
                if (space, k) not in nulls:
                    nulls[space, k] = null_neighbour_agreement(spaces.values[space], k, seed)
                table.at[trial, name] = neighbours.at[trial, space] - nulls[space, k]
    return table


def input_winners(methods: pd.DataFrame, cfg: SelectionConfig) -> tuple[pd.Series, dict[str, int]]:
    """``combined`` inside each input: every method's score among its input's methods, and each input's winner (its row)."""
    within = pd.Series(np.nan, index=methods.index)
    for _, group in methods.groupby("input", sort=False):
        within[group.index] = _stable_first(group, group["input_neighbours"], cfg.candidate_stability)
    winners = {}
    for name, group in methods.assign(within=within).groupby("input", sort=False):
        candidates = group[~group["degenerate"].astype(bool)].dropna(subset=["within"])
        if len(candidates):
            winners[name] = candidates.sort_values(["within", "pooled_silhouette"], ascending=False, kind="stable").index[0]
    return within, winners


def shared_structure(methods: pd.DataFrame, winners: dict[str, int]) -> pd.Series:
    """Each method's structure beyond the null averaged over the admissible inputs' spaces, each input once (see :func:`per_input_scores`)."""
    own = {name: methods.at[row, "beyond_null"] for name, row in winners.items()}
    best = np.nanmax(list(own.values())) if own and not np.isnan(list(own.values())).all() else math.nan
    admissible = [name for name, value in own.items() if best > 0 and value >= ADMISSIBLE * best] or list(own)
    columns = [f"beyond_null:{name}" for name in admissible if f"beyond_null:{name}" in methods]
    return methods[columns].mean(axis=1, skipna=False) if columns else pd.Series(math.nan, index=methods.index)


def within_input_ranks(neighbours: pd.DataFrame, input_name: dict[str, str], spaces: Spaces) -> dict[str, float]:
    """Each clustering's neighbour-agreement rank pooled over its own input's spaces only, among that input's clusterings."""
    ranks: dict[str, float] = {}
    trials = pd.Series(input_name)
    for name, members in trials.groupby(trials, sort=False):
        own = [space for space, built_on in spaces.built_on.items() if built_on == name]
        if own:
            ranks.update(pooled_rank(neighbours.loc[members.index, own]))
    return ranks


def score_in_spaces(
    ok: pd.DataFrame, sampled: dict[str, np.ndarray], embeddings: dict[str, np.ndarray], inputs: dict[str, np.ndarray], rows: np.ndarray, seed: int
) -> tuple[Spaces, pd.DataFrame]:
    """Each trial's pooled ranks in the shared spaces and in its own input's, and its structure beyond the null in its own
    input's space, as columns of ``ok`` (in place); returns the spaces and the structure in every input's space."""
    input_name = dict(zip(ok["trial"], ok["input"]))
    learnt: dict[str, list[np.ndarray]] = {}
    for trial in ok["trial"]:
        if trial in embeddings:
            learnt.setdefault(input_name[trial], []).append(embeddings[trial])
    spaces = build_spaces(inputs, learnt, rows)
    tables = space_scores(sampled, spaces.values)
    for score, table_ in tables.items():
        ok[f"pooled_{score}"] = ok["trial"].map(pooled_rank(table_))
    ok["input_neighbours"] = ok["trial"].map(within_input_ranks(tables["neighbours"], input_name, spaces))
    structure = beyond_null(tables["neighbours"], sampled, spaces, seed)
    ok["beyond_null"] = [structure.at[t, name] if name in structure else math.nan for t, name in zip(ok["trial"], ok["input"])]
    for name in structure.columns:
        ok[f"beyond_null:{name}"] = ok["trial"].map(structure[name])
    return spaces, structure


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
    ok["input"] = input_of(ok, inputs)
    sampled = {t: clusters[t][rows] for t in ok["trial"]}
    spaces, structure = score_in_spaces(ok, sampled, embeddings, inputs, rows, cfg.seed)
    ok["noise_in_sample"] = [float(np.mean(sampled[t] == NOISE)) for t in ok["trial"]]
    settings = [c for c in ok.columns if c in TrialParams.model_fields and c not in ("seed", "n_clusters")]
    ok["family"] = ok[settings].astype(str).agg("|".join, axis=1)  # the representation and clusterer, whatever the k
    method_of = dict(zip(ok["trial"], ok["method"]))
    ok["consensus"] = ok["trial"].map(consensus({t: clusters[t] for t in ok["trial"]}, method_of))
    ok["coassociation"] = ok["trial"].map(coassociation(sampled, method_of))
    ok["gap"] = ok["trial"].map(gap(sampled, spaces.values, cfg.seed))
    direction = 1.0 if mode == "max" else -1.0
    ok["objective"] = direction * ok[objective].astype(float) if objective in ok else math.nan

    columns = [
        *(f"pooled_{score}" for score in SPACE_SCORES),
        "input_neighbours",
        "beyond_null",
        "consensus",
        "coassociation",
        "gap",
        "objective",
        "input_silhouette",
        "resample_stability",
        "largest_cluster",
        "noise_in_sample",
    ]
    columns += [f"beyond_null:{name}" for name in structure.columns]
    columns += [c for c in ("ari", "nmi", "n_clusters") if c in ok and pd.to_numeric(ok[c], errors="coerce").notna().any()]
    ok = ok.assign(**{c: pd.to_numeric(ok[c], errors="coerce") for c in columns if c in ok})
    grouped = ok.groupby("method", sort=False)
    methods = grouped[[c for c in columns if c in ok]].mean()
    methods.insert(0, "n", grouped.size())
    methods["family"] = grouped["family"].first()
    methods["input"] = grouped["input"].first()
    if "ari" in methods:
        methods["ari_sd"] = grouped["ari"].std()  # the seeds' spread: the regret's uncertainty (Selection.regret_se)
    methods["seed_agreement"] = [mean_pairwise_ari([clusters[t] for t in group["trial"]]) for _, group in grouped]
    methods["stability"] = methods[["seed_agreement", "resample_stability"]].min(axis=1, skipna=True)
    methods["degenerate"] = methods["largest_cluster"] >= DEGENERATE_SHARE
    methods["shared_structure"] = shared_structure(methods, input_winners(methods, cfg)[1])
    scores = rule_scores(methods, cfg)
    for rule in RULES:
        methods[f"score_{rule}"] = scores[rule]
    return choose(methods.reset_index(), cfg, len(spaces.values), len(rows), time.perf_counter() - start, n_labels)


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
