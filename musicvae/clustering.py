"""Clusterers applied to an embedding (scikit-learn, seeded)."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans


def cluster(embedding: np.ndarray, method: str, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Cluster assignments, one per row.

    K-Means uses n_init=10, as the study and its reference figures do.
    """
    if method == "kmeans":
        return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(embedding)
    if method == "agglomerative":
        return AgglomerativeClustering(n_clusters=n_clusters, linkage="ward").fit_predict(embedding)
    raise ValueError(f"unknown clusterer '{method}'")
