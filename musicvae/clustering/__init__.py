"""Embedding to clusters: what the clusterer sees and the clusterers themselves.

In: an embedding (and optionally metadata groups). Out: a :class:`~musicvae.clustering.clusterers.Clustering`.

* :mod:`~musicvae.clustering.manifold`: the clustering space (metadata pooling, UMAP);
* :mod:`~musicvae.clustering.clusterers`: K-Means, agglomerative, GMM, DBSCAN... (a thin seeded layer over scikit-learn);
* :mod:`~musicvae.clustering.idec`: IDEC, which refines an encoder for its clusters.
"""
