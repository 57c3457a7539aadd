"""MLflowTrialCallback's batching: a trial's per-epoch metrics wait up to FLUSH_SECONDS and are logged together (real SQLite MLflow)."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from musicvae.tracking import runs as tracking
from musicvae.tracking import trial_tracking


class Trial(SimpleNamespace):
    def __str__(self) -> str:
        return f"vae-kmeans-{self.trial_id}"


@pytest.fixture
def callback(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, experiment_id = tracking.connect(uri, "batching")
    parent = tracking.start_parent_run(client, experiment_id, "batching", {}, "")
    made = trial_tracking.MLflowTrialCallback(uri, experiment_id, parent, "batching")
    calls: list[int] = []
    log_batch = made.client.log_batch
    made.client.log_batch = lambda run_id, metrics=(), **kw: (metrics and calls.append(len(metrics))) or log_batch(run_id, metrics=metrics, **kw)
    made.calls = calls
    return made


def _epoch(i: int) -> dict:
    return {"epoch": i, "val_loss": 10.0 - i, "training_iteration": i, "node_id": "n1"}


def _history(callback, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient(callback.tracking_uri).get_metric_history(run_id, key))


def test_epochs_wait_and_go_with_the_final_result_in_one_batch(callback) -> None:
    trial = Trial(trial_id="aaaa", config={"model": "vae", "seed": 0}, checkpoint=None, last_result={})
    callback.on_trial_result(0, [], trial, _epoch(1))
    run_id = callback.run_ids["aaaa"]
    assert callback.calls == [2]  # the first result at once: the run says where the trial runs
    assert MlflowClient(callback.tracking_uri).get_run(run_id).data.tags["ray.node_id"] == "n1"
    for i in range(2, 31):
        callback.on_trial_result(0, [], trial, _epoch(i))
    assert callback.calls == [2] and _history(callback, run_id, "val_loss") == [(1, 9.0)]  # 29 epochs within FLUSH_SECONDS: waiting
    final = {"ari": 0.5, "trial_seconds": 3.0, "training_iteration": 31, "notes": {}}
    callback.on_trial_result(0, [], trial, final)
    assert len(callback.calls) == 2  # one more batch: the waiting epochs and the final metrics
    assert _history(callback, run_id, "val_loss") == [(i, 10.0 - i) for i in range(1, 31)]
    assert _history(callback, run_id, "ari") == [(31, 0.5)]


def test_what_waited_long_enough_is_logged_by_the_loop_and_a_restart_logs_what_came_before(callback, monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(trial_tracking.time, "monotonic", lambda: clock[0])
    trial = Trial(trial_id="bbbb", config={"model": "vae", "seed": 1}, checkpoint=None, last_result={})
    callback.on_trial_result(0, [], trial, _epoch(1))  # logged at once (the node)
    callback.on_trial_result(0, [], trial, {**_epoch(2), "node_id": "n1"})
    callback.on_step_end(0, [])
    assert callback.calls == [2]
    clock[0] += trial_tracking.FLUSH_SECONDS
    callback.on_step_end(0, [])  # a long epoch: nothing new came, what waited is logged
    assert callback.calls == [2, 2]  # epoch 2: its epoch and val_loss
    callback.on_trial_result(0, [], trial, _epoch(3))
    callback.on_trial_recover(0, [], trial)  # the worker died after epoch 2: its epochs are logged before the restart
    assert _history(callback, callback.run_ids["bbbb"], "epoch") == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_the_callback_pickles_without_its_client_or_what_waits(callback) -> None:
    """Tune pickles callbacks into the sweep's state; what waits is not in it (a resume logs it from Tune's record of the trial)."""
    trial = Trial(trial_id="cccc", config={"model": "vae"}, checkpoint=None, last_result={})
    callback.on_trial_result(0, [], trial, _epoch(1))
    callback.on_trial_result(0, [], trial, _epoch(2))
    assert callback.pending
    del callback.calls, callback.client.log_batch  # the test's counter is no part of it
    restored = pickle.loads(pickle.dumps(callback))
    assert restored.pending == {} and restored.run_ids == callback.run_ids
    restored.on_trial_result(0, [], trial, {**_epoch(3), "trial_seconds": 1.0})
    assert _history(restored, restored.run_ids["cccc"], "epoch") == [(1, 1.0), (3, 3.0)]
