"""The PCA baseline: the linear embedding every VAE has to beat."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA


def pca_embedding(features: np.ndarray, n_components: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Project onto the leading components; also return the explained variance ratio.

    The number of components is capped at the feature count: asking for a
    32-D latent on 20 features gives all 20.
    """
    n_components = min(n_components, features.shape[1], features.shape[0])
    pca = PCA(n_components=n_components, random_state=seed)
    embedding = pca.fit_transform(features).astype(np.float32)
    return embedding, float(pca.explained_variance_ratio_.sum())
