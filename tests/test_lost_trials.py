"""A trial whose worker is lost while Tune hands it over (actor reuse) is run again and recorded, never silently dropped.

The regression behind a multinode failure: a node died while Tune was
resetting the node's cached worker for the next trial. Ray 2.60 counts the
actor's failure and the failed ``reset`` task as two failures; the second
errors the trial, which never started, so the MLflow callback had no run for
it and the experiment held one run fewer than the budget, without a FAILED
run or any error. Here the worker kills itself inside ``reset_config`` (a
lost worker at exactly that moment, every time, on any machine).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from musicvae.tracking import runs as tracking
from musicvae.tracking import trial_tracking
from musicvae.tune.sweep import fit_settled

pytestmark = pytest.mark.slow


def dies_in_first_reset(marker: Path):
    """A class trainable (only those take ``reset_config``) whose worker dies the first time Tune reuses it."""
    from ray import tune

    class DiesInReset(tune.Trainable):
        def step(self) -> dict:
            return {"trial_seconds": 0.01, "silhouette": 0.5, "done": True}

        def save_checkpoint(self, checkpoint_dir: str) -> dict:
            return {}

        def load_checkpoint(self, checkpoint: dict) -> None:
            pass

        def reset_config(self, new_config: dict) -> bool:
            if not marker.exists():
                marker.touch()
                os._exit(1)  # the worker process is gone mid-reset, as when its node dies
            return True

    return DiesInReset


def test_a_trial_lost_while_its_worker_is_reused_is_run_again(tmp_path: Path) -> None:
    import ray
    from ray import tune

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = tracking.connect(uri, "lost")
    parent = tracking.start_parent_run(client, experiment_id, "lost", {}, "")
    callback = trial_tracking.MLflowTrialCallback(uri, experiment_id, parent, "lost")
    trainable = dies_in_first_reset(tmp_path / "died")
    ray.init(num_cpus=1, include_dashboard=False)  # one trial at a time: the second reuses the first one's worker
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={"x": tune.grid_search([1, 2, 3])},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=1),
            run_config=tune.RunConfig(name="lost", storage_path=str(tmp_path / "ray"), callbacks=[callback], failure_config=tune.FailureConfig(max_failures=2)),
        )
        results = fit_settled(tuner, str(tmp_path / "ray" / "lost"), trainable, rounds=2)
    finally:
        ray.shutdown()

    assert (tmp_path / "died").exists()  # the fault did happen
    assert results.num_errors == 0 and len(results) == 3
    runs = tracking.search_all_runs(MlflowClient(uri), experiment_id, f"tags.`mlflow.parentRunId` = '{parent}'")
    trial_ids = sorted(r.data.tags["ray.trial_id"] for r in runs)
    assert trial_ids == sorted({r.metrics["trial_id"] for r in results}), trial_ids  # one run per trial, none missing or doubled
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    assert not any(tracking.ERROR_TAG in r.data.tags for r in runs)  # the run that failed first was cleared when it ran again
