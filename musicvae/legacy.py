"""The module names of musicvae before its modules moved into subpackages, so that what older versions saved still loads.

Two things outlive a release and name our modules: the state Ray Tune pickles into a sweep's run folder
(the search, the callbacks, the trial namer: ``musicvae.search.SweepSearch``, ``musicvae.trial_tracking.MLflowTrialCallback``...),
which ``musicvae sweep --resume`` unpickles, and every MLflow model a sweep registered, whose ``MLmodel`` names its
``loader_module`` (``musicvae.pipeline`` until the move). An old name imports the module it became: the same module
object, not a copy, so a class has one identity whatever name found it.

Four old modules became packages of the same name (``config``, ``training``, ``clustering``, ``tracking``); a name
looked up on one of those packages is looked up in the module its contents moved to.

When it can go: once no sweep started before the move is left to resume and every registered champion has been
logged again (a model logged since names ``musicvae.serving.pipeline``). Nothing else imports through it;
``musicvae.pipeline_stages``, which nothing saved ever named, has no old name (it became the applying steps of
:mod:`musicvae.serving.pipeline` and :mod:`musicvae.serving.fitting`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

MOVED = {
    "musicvae.params": "musicvae.config.params",
    "musicvae.sweep_file": "musicvae.config.sweep_file",
    "musicvae.sources": "musicvae.data.sources",
    "musicvae.features": "musicvae.data.features",
    "musicvae.dataset": "musicvae.data.dataset",
    "musicvae.synth": "musicvae.data.synth",
    "musicvae.locations": "musicvae.data.locations",
    "musicvae.replicas": "musicvae.training.replicas",
    "musicvae.trained_models": "musicvae.training.trained_models",
    "musicvae.manifold": "musicvae.clustering.manifold",
    "musicvae.idec": "musicvae.clustering.idec",
    "musicvae.metrics": "musicvae.evaluation.metrics",
    "musicvae.disentanglement": "musicvae.evaluation.disentanglement",
    "musicvae.selection": "musicvae.evaluation.selection",
    "musicvae.leaderboard": "musicvae.evaluation.leaderboard",
    "musicvae.sweep": "musicvae.tune.sweep",
    "musicvae.trainable": "musicvae.tune.trainable",
    "musicvae.search": "musicvae.tune.search",
    "musicvae.progress": "musicvae.tune.progress",
    "musicvae.localcluster": "musicvae.tune.localcluster",
    "musicvae.trial_tracking": "musicvae.tracking.trial_tracking",
    "musicvae.parent_run": "musicvae.tracking.parent_run",
    "musicvae.sweep_runs": "musicvae.tracking.sweep_runs",
    "musicvae.tracking_server": "musicvae.tracking.server",
    "musicvae.report": "musicvae.reporting.report",
    "musicvae.report_html": "musicvae.reporting.report_html",
    "musicvae.charts": "musicvae.reporting.charts",
    "musicvae.figures": "musicvae.reporting.figures",
    "musicvae.study_figures": "musicvae.reporting.study_figures",
    "musicvae.projection": "musicvae.reporting.projection",
    "musicvae.trial_projection": "musicvae.reporting.trial_projection",
    "musicvae.summary": "musicvae.reporting.summary",
    "musicvae.pipeline": "musicvae.serving.pipeline",
    "musicvae.assign": "musicvae.serving.assign",
}
BECAME_PACKAGES = {  # the package -> where its old module's names are looked up, in order
    "musicvae.config": ("musicvae.config.sections",),
    "musicvae.training": ("musicvae.training.loop",),
    "musicvae.clustering": ("musicvae.clustering.clusterers",),
    # the callback lived in tracking.py before trial_tracking.py (sweeps of that time pickled this name)
    "musicvae.tracking": ("musicvae.tracking.runs", "musicvae.tracking.trial_tracking"),
}


def current_name(name: str) -> str:
    """The module's name today: ``musicvae.features.audio`` -> ``musicvae.data.features.audio``; a current name unchanged."""
    if not name.startswith("musicvae."):  # the hook sees every import of the process: the others pass at once
        return name
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return name


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old name as the module it became (first on ``sys.meta_path``: a moved package's submodules must not load twice)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if current_name(fullname) != fullname else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        # the import system returns whatever sys.modules holds under the name once this returns: the current module
        sys.modules[module.__name__] = importlib.import_module(current_name(module.__name__))


_missing = object()


def _package_getattr(package: str, modules: tuple[str, ...]):
    def __getattr__(name: str) -> Any:
        # a submodule not yet imported is the import system's to load (``from musicvae.tracking import runs``), not an old name
        if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is None:
            for module in modules:
                found = getattr(importlib.import_module(module), name, _missing)
                if found is not _missing:
                    return found
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def install() -> None:
    """Put the old names in place (once per process; :mod:`musicvae` does it on import)."""
    if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OldNames())
    for package, modules in BECAME_PACKAGES.items():
        importlib.import_module(package).__getattr__ = _package_getattr(package, modules)
