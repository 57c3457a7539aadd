"""The edge: a sweep file read once and validated (pydantic), and one trial's parameters.

In: YAML text. Out: a frozen :class:`~musicvae.config.sweep_file.SweepConfig` and, per trial,
:class:`~musicvae.config.params.TrialParams`; every later stage takes these typed objects, never raw dicts.

* :mod:`~musicvae.config.sections`: each section of the file (data, space, search, trials, tracking...) as a model;
* :mod:`~musicvae.config.sweep_file`: the file as a whole, the checks that tie sections together, loading;
* :mod:`~musicvae.config.params`: one trial's parameters and the rules of a search space over them.
"""
