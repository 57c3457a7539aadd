"""The answer applied: a trial's fitted pipeline as an MLflow model, and a whole collection labelled with it.

In: a finished trial (or ``models:/NAME@champion``) and tracks it has never seen. Out: embeddings, clusters,
assignments.csv and playlists.

* :mod:`~musicvae.serving.pipeline`: the pipeline, each step of applying it, saved as data (never a pickle) and loaded back;
* :mod:`~musicvae.serving.fitting`: fitting one from a finished trial;
* :mod:`~musicvae.serving.assign`: ``musicvae assign``, streaming on Ray Data.
"""
