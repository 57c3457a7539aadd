"""MLflow: every sweep a parent run, every trial a child run, and reading them back.

In: trial results from Tune and the sweep's outcome. Out: runs, metrics, artifacts and the registered champion;
back out: :class:`~musicvae.tracking.sweep_runs.SweepRuns` for reports.

* :mod:`~musicvae.tracking.runs`: the tags, connecting, logging, registering (the one home of MLflow tags);
* :mod:`~musicvae.tracking.parent_run`: the sweep's run; :mod:`~musicvae.tracking.trial_tracking`: the trials' runs (a Tune callback);
* :mod:`~musicvae.tracking.sweep_runs`: a finished sweep read back; :mod:`~musicvae.tracking.server`: a team's tracking server.
"""
