"""Model: training any network of :mod:`musicvae.models`, and the store that shares trained models across trials.

In: a trial's :class:`~musicvae.config.params.TrialParams`, its input arrays and
:class:`~musicvae.training.trained_models.TrainingHooks`. Out: a trained model and its embedding.

* :mod:`~musicvae.training.loop`: the seeded, resumable training loop (one seed or several);
* :mod:`~musicvae.training.replicas`: a method's seeds as one vectorised model;
* :mod:`~musicvae.training.trained_models`: one training per model, shared by the trials that only cluster differently.
"""
