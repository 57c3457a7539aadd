"""Metrics and selection: how good each clustering is, and which method to choose without labels.

In: clusterings and their spaces (each metric's direction and label: :mod:`musicvae.metric_registry`). Out: metric values, trial and method tables, a
:class:`~musicvae.evaluation.selection.Selection`.

* :mod:`~musicvae.evaluation.metrics`: internal (label-free) and external (evaluation-only) metrics;
* :mod:`~musicvae.evaluation.disentanglement`: how the latent space is organised;
* :mod:`~musicvae.evaluation.leaderboard`: trials and methods as tables;
* :mod:`~musicvae.evaluation.selection`: the label-free choice of method and k.
"""
