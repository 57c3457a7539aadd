"""Source and features: from where the tracks are to the matrix every trial shares.

In: a source section (a folder, a manifest, the FMA layout, a features table, the demo). Out: a
:class:`~musicvae.data.dataset.FeatureSet` (features, evaluation-only labels, metadata) and the
:class:`~musicvae.data.dataset.Preprocessing` a fitted pipeline repeats on new tracks.

* :mod:`~musicvae.data.sources`: the track table, whatever its origin;
* :mod:`~musicvae.data.features`: audio and text features extracted on Ray Data into a cached store;
* :mod:`~musicvae.data.dataset`: the shared matrices (standardised, near-constant columns dropped);
* :mod:`~musicvae.data.synth`: the demo collection; :mod:`~musicvae.data.locations`: paths and URIs alike.
"""
