"""The sweep's live progress bar, as a Tune callback on the driver (see :mod:`musicvae.console`)."""

from __future__ import annotations

import math
from typing import Any

from ray.tune import Callback
from rich.progress import TextColumn, TimeElapsedColumn, TimeRemainingColumn

from musicvae.console import new_progress


class SweepProgress(Callback):
    """Trials done / running / failed of the total, the best objective so far, elapsed and ETA; a line per failed trial.

    It reads what our trainable reports: ``failed`` and ``error`` for a trial
    whose own code failed (a result, not a Tune error), ``trial_seconds`` with
    the objective in a finished trial's last result.
    """

    def __init__(self, total: int, metric: str, mode: str) -> None:
        self.total, self.metric, self.mode = total, metric, mode
        self.best = math.nan
        self.failed: set[str] = set()
        self.progress = None

    def _bar(self) -> Any:
        if self.progress is None:
            self.progress = new_progress(TextColumn("{task.fields[state]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
            self.task = self.progress.add_task("Trials", total=self.total, state="")
            self.progress.start()
        return self.progress

    def _update(self, trials: list) -> None:
        running = sum(t.status == "RUNNING" for t in trials)
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)  # counted from Tune's trials: right on --resume too
        state = f"{running} running"
        if self.failed:
            state += f" · {len(self.failed)} failed"
        if not math.isnan(self.best):
            state += f" · best {self.metric} {self.best:.4g}"
        self._bar().update(self.task, completed=done, state=state)

    def _improves(self, value: float) -> bool:
        return math.isnan(self.best) or (value > self.best if self.mode == "max" else value < self.best)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trials)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("failed"):
            if trial.trial_id not in self.failed:
                self.failed.add(trial.trial_id)
                self._bar().console.print(f"[red]trial {trial} FAILED[/red]: {str(result.get('error', '')).strip()[:300]}")
        elif "trial_seconds" in result:
            value = result.get(self.metric)
            if isinstance(value, (int, float)) and not math.isnan(value) and self._improves(float(value)):
                self.best = float(value)
        self._update(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._update(trials)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Its worker was lost and the restarts ran out: sweep.fit_settled runs it again.
        self._bar().console.print(f"[yellow]trial {trial} lost with its worker[/yellow]; it will be run again")
        self._update(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self.progress is not None:
            self._update(trials)
            self.progress.stop()
            self.progress = None
