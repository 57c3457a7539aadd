"""The search space of a sweep file as an Optuna define-by-run space for Ray Tune.

Ray checkpoints the searcher by pickling it, so the space is a module-level
callable class rather than a closure.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from musicvae.config.params import ParamSpec, Range, applies, ordered_names, param_kind
from musicvae.config.sections import SearchConfig


def _suggest(trial: Any, name: str, spec: ParamSpec) -> tuple[Any, bool]:
    """Sample one parameter; returns (value, was_sampled). Scalars are constants."""
    if isinstance(spec, Range):
        if param_kind(name) == "int":
            step = int(spec.step) if spec.step else 1
            return trial.suggest_int(name, int(spec.low), int(spec.high), step=step, log=spec.log), True
        return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log), True
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec), True
    return spec, False


@dataclass(frozen=True)
class DefineByRun:
    """Called by Optuna once per trial; returns the constants of the space.

    Conditional parameters: the model and the clusterer are drawn first, then
    only the parameters that apply to them (β only for the VAE, eps only for
    DBSCAN, ...), so Optuna never attributes a score to a value that had no
    effect.
    """

    space: dict[str, ParamSpec]

    def __call__(self, trial: Any) -> dict[str, Any]:
        config: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for name in ordered_names(self.space):  # the parameters others depend on come first
            if not applies(name, config):
                continue
            config[name], sampled = _suggest(trial, name, self.space[name])
            if not sampled:
                constants[name] = config[name]
        return constants


class SweepSearch(OptunaSearch):
    """Ray's OptunaSearch, adapted to how musicvae trials behave.

    * Per-epoch results are skipped. Ray forwards every intermediate result to
      Optuna and raises KeyError when one lacks the objective; our trials
      report losses every epoch and the clustering metrics only at the end.
      Optuna needs intermediate values only for its own pruners, which we do
      not use (Tune's schedulers stop trials early).
    * Identical configurations are not run twice. Trials are seeded, so a
      repeat reproduces a result we already have; on small categorical spaces
      (PCA has few settings) TPE's random start-up often draws one. Such an
      ask is told to Optuna as FAILED (TPE ignores failed trials, so nothing
      is biased) and a new one is drawn. To repeat a configuration on purpose,
      put ``seed`` in the space.

    The redraw uses two private attributes of Ray's OptunaSearch,
    ``_ot_study`` (the Optuna study) and ``_ot_trials`` (trial id -> the
    Optuna trial it asked for): Ray has no public way to close an ask or swap
    the sampler. ``tests/test_search.py::test_ray_optuna_search_still_has_the_private_attributes_sweepsearch_uses``
    fails first if a Ray upgrade renames them.
    """

    MAX_REDRAWS = 100
    MODEL_REDRAWS = 10  # then redraw at random: TPE concentrates on what it saw work, i.e. on repeats

    def suggest(self, trial_id: str) -> dict | None:
        seen = self.__dict__.setdefault("_seen_configs", set())  # not in Ray's checkpoint: rebuilt lazily
        config = super().suggest(trial_id)
        sampler = self._ot_study.sampler
        try:
            for attempt in range(self.MAX_REDRAWS):
                if json.dumps(config, sort_keys=True, default=str) not in seen:
                    break
                self._ot_study.tell(self._ot_trials.pop(trial_id), state=TrialState.FAIL)
                if attempt == self.MODEL_REDRAWS:
                    self._ot_study.sampler = optuna.samplers.RandomSampler(seed=len(seen))
                config = super().suggest(trial_id)
        finally:
            self._ot_study.sampler = sampler
        seen.add(json.dumps(config, sort_keys=True, default=str))  # an exhausted space may still repeat
        return config

    def _objectives(self) -> list[str]:
        return self.metric if isinstance(self.metric, list) else [self.metric]

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if all(m in result for m in self._objectives()):
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """A trial that failed in our code (reported ``failed``) or scored NaN is a FAIL for Optuna.

        Ray would tell Optuna COMPLETE with a NaN (which Optuna refuses, leaving
        the trial RUNNING forever in the study) or PRUNED (which TPE learns from).
        A trial stopped early by the scheduler has no objective: PRUNED, as Ray does.
        """
        values = [(result or {}).get(m) for m in self._objectives()]
        scored_nan = any(isinstance(v, float) and math.isnan(v) for v in values)
        if result and (result.get("failed") or scored_nan):
            result, error = None, True
        super().on_trial_complete(trial_id, result, error)


class NSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II, picklable again.

    Tune pickles the searcher, sampler and all, into the sweep's state when the
    Tuner is built and at every snapshot. Optuna 5.1's genetic samplers hold a
    ``threading.Lock``, which cannot be pickled ("cannot pickle '_thread.lock'
    object": every ``sampler: nsga2`` sweep failed before its first trial); it
    is left out of the pickle and made anew when one is read back.
    """

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_thread_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.RandomSampler,  # the grid is enqueued; the sampler never draws
    "nsga2": NSGAIISampler,
}


def optuna_search(space: dict[str, ParamSpec], search: SearchConfig, points: list[dict[str, Any]] | None = None) -> SweepSearch:
    """The searcher for a sweep; ``points`` (:attr:`SweepConfig.fixed_points`) are run first, in order.

    For ``grid`` they hold every configuration: Optuna's own GridSampler wants
    every parameter in every trial, which a conditional space does not have
    (no ``eps`` for K-Means), so the grid is enumerated by the config and
    enqueued as Optuna's fixed trials.
    """
    multi = search.multi_objective
    return SweepSearch(
        space=DefineByRun(space),
        metric=search.metrics if multi else search.primary,
        mode=search.modes if multi else search.resolved_mode,
        sampler=SAMPLERS[search.sampler](seed=search.seed),
        points_to_evaluate=points or None,
    )
