"""The sweep on Ray Tune: trials scheduled, searched by Optuna, resumed after a crash.

In: a :class:`~musicvae.config.sweep_file.SweepConfig`. Out: a :class:`~musicvae.tune.sweep.SweepOutcome`
(the tables, the selection, the champion); each trial runs :func:`musicvae.trial.run_trial`.

* :mod:`~musicvae.tune.sweep`: the sweep from start to outcome;
* :mod:`~musicvae.tune.trainable`: one trial inside a Ray worker;
* :mod:`~musicvae.tune.search`: the search space for Optuna; :mod:`~musicvae.tune.progress`: the live progress bar;
* :mod:`~musicvae.tune.localcluster`: a several-node Ray cluster on one machine (tests and benchmarks).
"""
