"""musicvae: which representation groups your music best, found by a sweep on Ray, and the answer applied to a whole collection.

The Python API, in the habits of scikit-learn and Ray Tune::

    import musicvae
    import pandas as pd

    outcome = musicvae.run_sweep("sweeps/quickstart.yaml", quiet=True)   # the sweep; nothing printed
    print(outcome.summary())                                               # what `musicvae sweep` prints at the end
    pipeline = musicvae.load_pipeline("models:/quickstart@champion")       # the registered champion, read as data
    clusters = pipeline.predict(pd.DataFrame({"path": ["song.mp3"]}))      # track_id, cluster, distance, confidence
    embedding = pipeline.transform(pd.DataFrame({"path": ["song.mp3"]}))
    report = musicvae.serving.assign("models:/quickstart@champion", "~/music", out="assignments")  # every song, on Ray Data

Imports are lazy: ``import musicvae`` loads none of Ray, torch or MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from musicvae.config.sweep_file import SweepConfig
    from musicvae.serving.assign import AssignReport
    from musicvae.serving.pipeline import Pipeline
    from musicvae.tune.sweep import SweepOutcome

from musicvae import legacy

legacy.install()  # the module names older versions pickled and logged (see musicvae.legacy)

__all__ = ["assign", "load_pipeline", "load_sweep", "run_sweep"]


def load_sweep(path: str | Path) -> SweepConfig:
    """A sweep file, validated: an error names the key that is wrong."""
    from musicvae.config.sweep_file import load_sweep as load

    return load(path)


def run_sweep(sweep: str | Path | SweepConfig, *, quiet: bool = False, resume: str | None = None, address: str | None = None) -> SweepOutcome:
    """Run a sweep (a file, or a loaded :class:`~musicvae.config.sweep_file.SweepConfig`) and return its outcome: the tables, the
    selection and the champion registered in MLflow. ``quiet``: print nothing (no lines, no progress bars)."""
    from musicvae import console
    from musicvae.tune.sweep import run_sweep as run

    cfg = sweep if not isinstance(sweep, (str, Path)) else load_sweep(sweep)
    if not quiet:
        return run(cfg, resume=resume, address=address)
    with console.silenced():
        return run(cfg, resume=resume, address=address)


def load_pipeline(uri: str) -> Pipeline:
    """A fitted pipeline (``models:/<sweep>@champion``, ``runs:/<run id>/pipeline`` or a folder), with ``transform`` and ``predict``.

    Set the tracking URI first (``mlflow.set_tracking_uri``) where it is not $MLFLOW_TRACKING_URI. Never unpickles anything.
    """
    from musicvae.serving.pipeline import load_pipeline as load

    return load(uri)


def assign(model_uri: str, source: str | Path, out: str | Path, **options: Any) -> AssignReport:
    """Label every track of ``source`` with the pipeline at ``model_uri`` (``musicvae assign``); the files go to ``out``."""
    from musicvae.serving.assign import assign as run

    return run(model_uri, source, out, **options)
