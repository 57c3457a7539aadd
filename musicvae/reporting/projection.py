"""2-D pictures of an embedding: UMAP or t-SNE coordinates, with the cases those methods cannot take handled first."""

from __future__ import annotations

import warnings

import numpy as np

PROJECTIONS = ("umap", "tsne")
UMAP_EXACT_BELOW = 4096  # umap-learn's own cut-off between exact neighbours and NN-descent


def project(embedding: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """2-D coordinates of an embedding, (n, 2) float32, by UMAP or t-SNE.

    Embeddings that are already at most 2-D are drawn as they are: a
    neighbour-graph layout of a line or a plane only distorts it. Fewer than
    5 points cannot support a neighbourhood graph, so they get their first two
    principal components. Identical rows (a VAE whose posterior collapsed
    entirely) take the same path, to a single point: t-SNE's PCA initialisation
    divides by their zero spread and crashes the process (scikit-learn #28368).
    """
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose one of {PROJECTIONS}")
    x = np.asarray(embedding, dtype=np.float32)
    if x.ndim == 1:  # one value per track: a single column
        x = x[:, None]
    if not np.isfinite(x).all():
        raise ValueError("the embedding has NaN or infinite values (a diverged model?); there is nothing to project")
    n, d = x.shape
    if d <= 2:
        return np.hstack([x, np.zeros((n, 2 - d), dtype=np.float32)])
    if n < 5 or not np.ptp(x, axis=0).any():
        return principal_components(x)
    if method == "umap":
        from sklearn.metrics import pairwise_distances

        from musicvae.clustering.manifold import import_umap  # slow to import (numba): only when a UMAP is asked for

        # Below UMAP_EXACT_BELOW rows umap-learn finds exact neighbours from all pairwise distances, but computes them
        # through sklearn with a Python-level callable, one call per pair (~20 s at 3000 rows). sklearn's vectorised
        # distances give the same neighbours in a fraction of a second; above the cut-off umap uses NN-descent anyway.
        # And the k nearest of each row: umap sorts every whole row (0.6 s of a 4 s UMAP at 3000 rows), a partial sort
        # finds the same neighbours in the same order (ties in distance aside), so the same coordinates.
        exact, k = n < UMAP_EXACT_BELOW, min(15, n - 1)
        distances = pairwise_distances(x) if exact else None
        options: dict = {"metric": "precomputed", "precomputed_knn": nearest(distances, k)} if exact else {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, message=".*(n_jobs|random_state|precomputed).*")
            reducer = import_umap().UMAP(n_neighbors=k, min_dist=0.1, random_state=seed, n_jobs=1, **options)
            coords = reducer.fit_transform(distances if exact else x)
    else:
        from sklearn.manifold import TSNE

        coords = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(x)
    return np.asarray(coords, dtype=np.float32)


def nearest(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, None]:
    """Each row's ``k`` nearest columns (itself first) and their distances, nearest first: umap's ``precomputed_knn``."""
    index = np.argpartition(distances, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(distances, index, axis=1)
    order = np.argsort(near, axis=1, kind="stable")
    return np.take_along_axis(index, order, axis=1), np.take_along_axis(near, order, axis=1), None


def principal_components(x: np.ndarray) -> np.ndarray:
    """First two principal components (scikit-learn's PCA), zero-padded when the data span fewer than two directions."""
    from sklearn.decomposition import PCA

    if len(x) == 0:
        return np.zeros((0, 2), dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):  # identical rows: zero variance, a 0/0 explained-variance ratio
        coords = PCA(n_components=min(2, *x.shape), svd_solver="full").fit_transform(x)
    return np.hstack([coords, np.zeros((len(x), 2 - coords.shape[1]))]).astype(np.float32)
