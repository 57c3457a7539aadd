"""One arm of ``bench/throughput.py --sections sweep``: sweeps/hard.yaml run whole by the musicvae on PYTHONPATH, its steps timed.

    PYTHONPATH=TREE python bench/sweep_arm.py TREE FMA_TABLE OUT [--no-replicas] [--sweep=easy.yaml]

Writes ``OUT/methods.csv`` (the per-method table) and ``OUT/timing.json`` (the
wall time, musicvae's own steps, wrapped for this run, and the CPU seconds of
this process, the sweep's driver). It imports nothing of its own tree: the
arm's tree is the only musicvae this process and its Ray workers see.
``--no-replicas`` runs the sweep with ``trials.replicas: false`` (a tree that
has the option); ``--sweep`` runs another of the tree's sweep files on the table.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# A module by its name in the stage subpackages, then by its name before them (an older tree).
SWEEP = ("musicvae.tune.sweep", "musicvae.sweep")
PHASES = {  # musicvae's own steps timed in an arm: (module names, function) -> the phase it belongs to
    (SWEEP, "load_feature_set"): "features",
    (SWEEP, "fit_settled"): "trials",
    (SWEEP, "select_sweep"): "selection",
    (SWEEP, "project_ahead"): "figures after",  # f23101b to 9326e99
    (SWEEP, "store_projections"): "figures after",  # since: the β grid's started before the selection
    (("musicvae.reporting.trial_projection", "musicvae.trial_projection"), "project_selected"): "figures after",
    (("musicvae.reporting.summary", "musicvae.summary"), "sweep_figures"): "figures after",
}


def run_arm(tree: Path, table: Path, out: Path, replicas: bool = True, sweep_file: str = "hard.yaml") -> None:
    """One arm, in this process: sweeps/<sweep_file> (on ``table``) by ``tree``'s musicvae, its phases timed; writes methods.csv and timing.json to ``out``."""
    import musicvae

    assert Path(musicvae.__file__).is_relative_to(tree), musicvae.__file__

    # A module is asked of the tree's files, not by trying its import: the venv's editable install of this
    # checkout would find one the arm's tree lacks (and a newer tree answers to old names too).
    def in_tree(*modules: str) -> str | None:
        return next((m for m in modules if (tree / f"{m.replace('.', '/')}.py").exists()), None)

    sweep = importlib.import_module(in_tree(*SWEEP))
    # load_sweep: in musicvae.sweep_file since 06510ff, in musicvae.config.sweep_file since the stage subpackages
    load_sweep = importlib.import_module(in_tree("musicvae.config.sweep_file", "musicvae.sweep_file", "musicvae.config")).load_sweep

    phases: dict[str, float] = {}

    def timed(function: Callable, phase: str) -> Callable:
        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - start

        return wrapper

    for (modules, name), phase in PHASES.items():
        module = in_tree(*modules)
        owner = importlib.import_module(module) if module else None
        if hasattr(owner, name):
            setattr(owner, name, timed(getattr(owner, name), phase))
        else:  # an older tree has fewer of these steps; say so, so a moved step is seen rather than silently untimed
            print(f"sweep_arm: {modules[0]}.{name} is not in {tree.name}: its time is not in '{phase}'", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    cfg = load_sweep(tree / "sweeps" / sweep_file)
    source = cfg.data.source.model_copy(update={"path": str(table)})
    cfg = cfg.model_copy(
        update={
            "storage_path": str(work / "ray"),
            "data": cfg.data.model_copy(update={"source": source, "cache_dir": str(work / "cache")}),
            "tracking": cfg.tracking.model_copy(update={"uri": f"sqlite:///{work}/mlflow.db"}),
        }
    )
    if not replicas:
        cfg = cfg.model_copy(update={"trials": cfg.trials.model_copy(update={"replicas": False})})
    start = time.perf_counter()
    outcome = sweep.run_sweep(cfg)
    phases["wall"] = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    phases["driver cpu"] = usage.ru_utime + usage.ru_stime
    out.mkdir(parents=True, exist_ok=True)
    outcome.methods.to_csv(out / "methods.csv", index=False)
    (out / "timing.json").write_text(json.dumps({"phases": phases, "trials": len(outcome.leaderboard)}))


if __name__ == "__main__":
    sweep_file = next((a.split("=", 1)[1] for a in sys.argv[4:] if a.startswith("--sweep=")), "hard.yaml")  # e.g. --sweep=easy.yaml
    run_arm(Path(sys.argv[1]).resolve(), Path(sys.argv[2]), Path(sys.argv[3]), replicas="--no-replicas" not in sys.argv[4:], sweep_file=sweep_file)
