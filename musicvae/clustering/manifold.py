"""What the clusterer sees: the embedding, optionally pooled with its metadata group and mapped onto a manifold.

Two optional steps sit between a trained embedding and the clusterer:

* **Group pooling** (``data.group_by``, e.g. ``[artist]``): each track's
  embedding moves towards the mean of its group, ``(1 - w) z + w mean(z_group)``.
  Tracks of one artist are mostly of one genre, and a name embedding cannot
  say which tracks share a name. Metadata, not labels: the config refuses
  genre-like columns, and the sweep's summary says grouping was used.
* **N2D** (McConville et al., ICPR 2020): UMAP of the embedding (``manifold:
  umap``), so that K-Means or a GMM clusters the local manifold rather than
  the raw latent geometry. Fitted once per distinct input and seed and cached
  on disk, as the figures' projections are: the clusterers of one model and
  seed share one fit.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from musicvae.config.params import TrialParams

_numba_cache_on = False


def pool_groups(embedding: np.ndarray, groups: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * z + weight * (mean of z over the track's group)``; a group of one is left as it is."""
    sums = np.zeros((groups.max() + 1, embedding.shape[1]), np.float64)
    np.add.at(sums, groups, embedding)
    means = sums / np.bincount(groups)[:, None]
    return ((1.0 - weight) * embedding + weight * means[groups]).astype(np.float32)


def cached_array(cache_dir: Path | None, array: np.ndarray, settings: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, stored in ``cache_dir`` under the bytes of ``array`` (its input) and ``settings``; read back when present.

    Keyed by content, so a different input can never be served a stale
    result; written to a temporary file and renamed, so a concurrent trial
    reads a whole file or none. ``cache_dir`` None: no cache.
    """
    if cache_dir is None:
        return compute()
    key = hashlib.sha256(np.ascontiguousarray(array).tobytes() + f"{array.shape}{settings}".encode()).hexdigest()[:32]
    path = cache_dir / f"{key}.npy"
    if path.exists():
        return np.load(path)
    result = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(partial, result)
    partial.replace(path)
    return result


def import_umap() -> ModuleType:
    """umap-learn, with numba's on-disk cache switched on for its compiled functions and pynndescent's.

    umap-learn compiles some 250 functions with numba and asks for no disk
    cache, so every new process compiled them all again before its first fit,
    and each Ray worker that draws or clusters a UMAP is a new process: with
    the cache, a new process's first UMAP skips that compilation and gives the
    same coordinates. ``Dispatcher.enable_caching`` is what
    numba's ``cache=True`` does; numba keys the cache by source file, its
    modification time and the CPU, so an upgrade or another machine compiles anew.
    """
    global _numba_cache_on
    import umap
    from numba.core.registry import CPUDispatcher

    if not _numba_cache_on:
        for name, module in list(sys.modules.items()):
            if name.split(".")[0] in ("umap", "pynndescent"):
                for function in list(vars(module).values()):
                    if isinstance(function, CPUDispatcher) and type(function._cache).__name__ == "NullCache":
                        function.enable_caching()
        _numba_cache_on = True
    return umap


def umap_manifold(embedding: np.ndarray, n_components: int, n_neighbors: int, min_dist: float, seed: int, cache_dir: Path | None = None) -> np.ndarray:
    """UMAP coordinates of ``embedding`` (seeded, so deterministic), read from ``cache_dir`` when the same input was mapped before."""

    def fit() -> np.ndarray:
        neighbours = min(n_neighbors, len(embedding) - 1)
        reducer = import_umap().UMAP(n_components=n_components, n_neighbors=neighbours, min_dist=min_dist, random_state=seed, n_jobs=1)
        return reducer.fit_transform(embedding).astype(np.float32)

    return cached_array(cache_dir, embedding, f"umap/{n_components}/{n_neighbors}/{min_dist}/{seed}", fit)


def pooled_space(params: TrialParams, embedding: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """The embedding pooled by group (when the data has groups): the clustering space before any UMAP stage."""
    if groups is not None and params.group_weight > 0:
        return pool_groups(embedding, groups, params.group_weight)
    return embedding


def clustering_space(params: TrialParams, embedding: np.ndarray, groups: np.ndarray | None, cache_dir: Path | None = None) -> np.ndarray:
    """The embedding as the clusterer gets it: pooled by group (when the data has groups), then UMAP (``manifold: umap``)."""
    embedding = pooled_space(params, embedding, groups)
    if params.manifold == "umap":
        embedding = umap_manifold(embedding, params.manifold_dim, params.manifold_neighbors, params.manifold_min_dist, params.seed, cache_dir)
    return embedding
