"""The quiet console: libraries' loggers lowered unless -v, and the sweep's progress bar as Tune's callbacks drive it."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
from rich.console import Console

from musicvae import console
from musicvae.tune.progress import SweepProgress


def test_quiet_lowers_the_libraries_loggers_and_verbose_leaves_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in console.QUIET_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.INFO)
    console.set_verbose(True)
    console.quiet_libraries()
    assert logging.getLogger("ray.train").level == logging.INFO and console.tune_verbosity() == 1
    console.set_verbose(False)
    console.quiet_libraries()
    assert logging.getLogger("ray.train").level == logging.WARNING and logging.getLogger("ray.data").level == logging.ERROR
    assert console.tune_verbosity() == 0 and console.worker_env() == {console.VERBOSE_ENV: "0"}


def test_the_progress_bar_counts_trials_keeps_the_best_and_prints_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(console, "console", Console(file=out, width=200, force_terminal=False))
    trials = [SimpleNamespace(trial_id=str(i), status="PENDING") for i in range(3)]
    bar = SweepProgress(total=3, metric="input_silhouette", mode="max")
    trials[0].status = trials[1].status = "RUNNING"
    bar.on_trial_start(0, trials, trials[0])
    bar.on_trial_result(0, trials, trials[0], {"epoch": 1})
    bar.on_trial_result(0, trials, trials[0], {"trial_seconds": 1.0, "input_silhouette": 0.2})
    trials[0].status = "TERMINATED"
    bar.on_trial_complete(0, trials, trials[0])
    bar.on_trial_result(0, trials, trials[1], {"trial_seconds": 1.0, "input_silhouette": 0.1})  # worse: not the best
    bar.on_trial_result(0, trials, trials[2], {"failed": True, "error": "ValueError: NaN in the latent"})
    bar.on_trial_result(0, trials, trials[2], {"failed": True, "error": "ValueError: NaN in the latent"})  # said once
    assert bar.best == 0.2 and bar.failed == {"2"}
    trials[1].status = trials[2].status = "TERMINATED"
    bar.on_experiment_end(trials)
    text = out.getvalue()
    assert text.count("FAILED") == 1 and "NaN in the latent" in text
    assert "3/3" in text and "1 failed" in text and "best input_silhouette 0.2" in text
