"""The PCA baseline: the linear embedding every VAE has to beat."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA


def fit_pca(features: np.ndarray, n_components: int, seed: int = 0) -> tuple[np.ndarray, PCA]:
    """Project onto the leading components; also return the fitted PCA (its components and mean map new tracks).

    The number of components is capped at the feature count: asking for a
    32-D latent on 20 features gives all 20.
    """
    n_components = min(n_components, features.shape[1], features.shape[0])
    pca = PCA(n_components=n_components, random_state=seed)
    return pca.fit_transform(features).astype(np.float32), pca


def pca_embedding(features: np.ndarray, n_components: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """:func:`fit_pca`'s embedding and the variance ratio its components explain."""
    embedding, pca = fit_pca(features, n_components, seed)
    return embedding, float(pca.explained_variance_ratio_.sum())
