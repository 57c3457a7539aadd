"""The Tune trainable: one trial inside a Ray worker.

It runs :func:`musicvae.trial.run_and_save` (the whole trial, no Ray) and
reports to Tune: the losses every epoch, a training checkpoint every
``trials.checkpoint_every`` epochs, then the metrics with the artifacts. A
trial's own error is its result (recorded FAILED); a checkpoint that cannot
be written is the storage's (:class:`StorageError`: Tune restarts the trial).
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Any

from musicvae import console
from musicvae.config.params import TrialParams
from musicvae.config.sections import ResourcesConfig, SelectionConfig, TrialsConfig
from musicvae.data.dataset import FeatureSet


class StorageError(OSError):
    """A checkpoint could not be written to the sweep's storage (e.g. the disk is full): not the trial's failure."""


def report_checkpoint(metrics: dict[str, Any], directory: str) -> None:
    """``tune.report`` with a checkpoint; Tune copies it to ``storage_path`` here, so a full disk raises here."""
    from ray import tune

    try:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
    except OSError as exc:
        raise StorageError(f"could not save the trial's checkpoint to the sweep's storage ({exc}); free space, then musicvae sweep --resume") from exc


def tune_trainable(
    config: dict[str, Any],
    data: FeatureSet,
    trials: TrialsConfig,
    resources: ResourcesConfig,
    cache_dir: str | None = None,
    selection: SelectionConfig | None = None,
    models_dir: str | None = None,
    plan: list[dict[str, Any]] | None = None,
) -> None:
    """A Tune function trainable: per-epoch losses with periodic checkpoints, then the metrics and artifacts.

    A restarted trial (a retry after a crash, or a resumed sweep) finds its
    last checkpoint with ``tune.get_checkpoint()`` and continues training
    from that epoch instead of starting over. ``models_dir`` is the sweep run's
    store of trained models, shared by the trials that only cluster differently,
    and ``plan`` the grid's points, whose seeds of a model train together
    (:mod:`musicvae.training.trained_models`).
    """
    import ray
    import torch
    from ray import tune

    from musicvae.training.loop import TrainingState
    from musicvae.training.trained_models import TrainingHooks
    from musicvae.trial import run_and_save

    console.quiet_libraries()  # this worker's loggers: "Checkpoint successfully created" per checkpoint, unless -v
    torch.set_num_threads(max(1, int(resources.cpus_per_trial)))
    params = TrialParams(**config)
    resume = None
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as directory:
            resume = TrainingState.load(directory)

    node = {"node_id": ray.get_runtime_context().get_node_id()}  # which machine ran it: a tag in MLflow

    def on_epoch(stats: Any, state: TrainingState | None) -> None:
        report = {**node, "epoch": stats.epoch, "train_loss": stats.train_loss, "val_loss": stats.val_loss}
        report.update(reconstruction=stats.reconstruction, kl=stats.kl, beta_now=stats.beta)
        if state is None:
            tune.report(report)
            return
        with tempfile.TemporaryDirectory() as directory:
            state.save(directory)
            report_checkpoint(report, directory)

    try:
        with tempfile.TemporaryDirectory() as directory:
            hooks = TrainingHooks(device=resources.device, on_epoch=on_epoch, resume=resume, models_dir=Path(models_dir) if models_dir else None, plan=plan)
            cache = Path(cache_dir) if cache_dir else None
            result, timing = run_and_save(params, data, Path(directory) / "artifacts", trials, selection=selection, cache_dir=cache, hooks=hooks)
            report_checkpoint({**result.metrics, **timing, **node, "notes": result.notes}, directory)
    except StorageError:
        raise  # the sweep's storage, not the trial: Tune restarts the trial from its last checkpoint
    except Exception as exc:  # noqa: BLE001 - any error of the trial's own code is its result
        # Seeded trials fail the same way every time (a NaN loss, k > n): recorded as
        # failed, not raised, so FailureConfig's retries are kept for what a retry can
        # fix: a worker or node that died. Tune's own errors are not caught here.
        traceback.print_exc()
        tune.report({**node, "failed": 1, "error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc()[-20000:]})
