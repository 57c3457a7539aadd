"""Every clustering scored in one shared set of spaces: the numbers the label-free rules (:mod:`musicvae.evaluation.selection`) rank.

A trial's own silhouette is measured in its own embedding, so it cannot rank
trials. Scores become comparable once every clustering is measured in the
*same* spaces: the standardised inputs and every distinct embedding of the
sweep (active dimensions only, z-scored, on one seeded row sample). Here:
the spaces (:func:`build_spaces`), each clustering's silhouette,
Calinski-Harabasz and neighbour agreement in each (:func:`space_scores`),
their ranks pooled over spaces (:func:`pooled_rank`), the agreement of
clusterings with each other (:func:`consensus`, :func:`coassociation`), and
scores against a reference with no clusters (:func:`gap`,
:func:`null_neighbour_agreement`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from musicvae.clustering.clusterers import NOISE, ari_of_codes
from musicvae.evaluation.disentanglement import ACTIVE_THRESHOLD

INPUTS = "inputs"
GAP_REFERENCES = 5  # uniform reference sets per k for the gap statistic


def content_key(array: np.ndarray) -> str:
    """The same embedding (the clusterers of one model and seed) is one space, however many trials share it."""
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.tobytes() + str(array.shape).encode()).hexdigest()[:16]


def input_space(name: str) -> str:
    """The name of an input's space: 'inputs' for the MFCC statistics (or a table's columns), 'inputs:musicnn_msd' for another input."""
    return INPUTS if name == "mfcc" else f"{INPUTS}:{name}"


@dataclass(frozen=True)
class Spaces:
    """The shared spaces on the sampled rows, and the input each was built on (an input's own space, or an embedding a model learnt from it)."""

    values: dict[str, np.ndarray]
    built_on: dict[str, str]


def same_inputs(inputs: dict[str, np.ndarray]) -> dict[str, str]:
    """Each input's name -> the first listed input holding the same values: a copy under another name is one input, not two."""
    first: dict[str, str] = {}
    return {name: first.setdefault(content_key(values), name) for name, values in inputs.items()}


def build_spaces(inputs: dict[str, np.ndarray], embeddings: dict[str, np.ndarray], rows: np.ndarray) -> Spaces:
    """The shared spaces on the sampled rows: each distinct z-scored input (by name, see :func:`input_space`), then each distinct
    embedding's active dimensions, z-scored.

    ``embeddings`` maps an input's name to the embeddings models learnt from
    it (one per trial; the clusterers of one model and seed share theirs). Dimensions whose posterior mean hardly
    varies (Var <= 0.01, the active-unit threshold) are dropped before
    z-scoring: scaled up to unit variance, the noise of a collapsed unit
    would outweigh the dimensions that carry structure. An embedding with no
    active dimension adds no space; an input or embedding seen already
    (the same values) adds none either.
    """
    same = same_inputs(inputs)
    values: dict[str, np.ndarray] = {}
    built_on: dict[str, str] = {}
    seen = set()
    for name, matrix in inputs.items():
        key = content_key(matrix)
        if key not in seen:
            values[input_space(name)], built_on[input_space(name)] = StandardScaler().fit_transform(matrix[rows]), name
        seen.add(key)
    for name, arrays in embeddings.items():
        for embedding in arrays:
            key = content_key(embedding)
            if key in seen:
                continue
            seen.add(key)
            active = embedding.var(axis=0) > ACTIVE_THRESHOLD
            if active.any():
                values[key], built_on[key] = StandardScaler().fit_transform(embedding[rows][:, active]), same.get(name, name)
    return Spaces(values, built_on)


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
            nearest = nearest_neighbours(x)
            for (i, (codes, _)), lo, hi in zip(scored.items(), bounds[:-1], bounds[1:]):
                silhouettes[i, j] = _silhouette(sums[:, lo:hi], codes)
                harabasz[i, j] = _calinski_harabasz(centroid_sums[lo:hi], squares, codes)
                neighbours[i, j] = neighbour_agreement(nearest, codes)
    frame = lambda values: pd.DataFrame(values, index=list(clusterings), columns=list(spaces))  # noqa: E731
    return {"silhouette": frame(silhouettes), "calinski_harabasz": frame(harabasz), "neighbours": frame(neighbours)}


def nearest_neighbours(x: np.ndarray) -> np.ndarray:
    """Each row's ``NEIGHBOURS`` nearest other rows (fewer when there are not that many)."""
    return NearestNeighbors(n_neighbors=min(NEIGHBOURS, len(x) - 1) + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]


def neighbour_agreement(nearest: np.ndarray, codes: np.ndarray) -> float:
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


NULL_REFERENCES = 2  # Gaussian reference sets per input and k for the neighbour agreement of no structure


def null_neighbour_agreement(x: np.ndarray, k: int, seed: int = 0) -> float:
    """The neighbour agreement of K-Means at ``k`` on data with no clusters: Gaussian samples of ``x``'s mean and covariance.

    What a grouping of ``k`` clusters scores where there is nothing to find
    (the null of the gap statistic, Tibshirani et al. 2001, with the data's
    covariance instead of its bounding box). Neighbour agreement grows with
    how local a space's neighbourhoods are, which a space's dimension and
    spectrum decide as much as its clusters; the same covariance keeps both,
    so the agreement a grouping reaches above this one is what the clusters
    add, and spaces of different inputs can be compared by it. Each sample
    is ``g @ diag(s) @ vt / sqrt(n)`` for the centred rows' SVD ``u s vt``,
    g standard normal: its covariance is the rows' own.
    """
    n = len(x)
    if not 2 <= k < n:
        return math.nan
    _, s, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    rng = np.random.default_rng([seed, k])
    values = []
    for i in range(NULL_REFERENCES):
        reference = (rng.standard_normal((n, len(s))) * s) @ vt / math.sqrt(n)
        labels = KMeans(k, n_init=3, random_state=seed + i).fit_predict(reference)
        values.append(neighbour_agreement(nearest_neighbours(reference), labels))
    return float(np.mean(values))
