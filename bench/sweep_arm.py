"""One arm of ``bench/throughput.py --sections sweep``: sweeps/hard.yaml run whole by the musicvae on PYTHONPATH, its steps timed.

    PYTHONPATH=TREE python bench/sweep_arm.py TREE FMA_TABLE OUT

Writes ``OUT/methods.csv`` (the per-method table) and ``OUT/timing.json`` (the
wall time and musicvae's own steps, wrapped for this run). It imports nothing
of its own tree: the arm's tree is the only musicvae this process and its Ray
workers see.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PHASES = {  # musicvae's own steps timed in an arm: (module, function) -> the phase it belongs to
    ("musicvae.sweep", "load_feature_set"): "features",
    ("musicvae.sweep", "fit_settled"): "trials",
    ("musicvae.sweep", "select_sweep"): "selection",
    ("musicvae.sweep", "project_ahead"): "figures after",
    ("musicvae.trial_projection", "project_selected"): "figures after",
    ("musicvae.summary", "sweep_figures"): "figures after",
}


def run_arm(tree: Path, table: Path, out: Path) -> None:
    """One arm, in this process: sweeps/hard.yaml by ``tree``'s musicvae, its phases timed; writes methods.csv and timing.json to ``out``."""
    import musicvae

    assert Path(musicvae.__file__).is_relative_to(tree), musicvae.__file__
    from musicvae import sweep
    from musicvae.sweep_file import load_sweep

    phases: dict[str, float] = {}

    def timed(function: Callable, phase: str) -> Callable:
        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - start

        return wrapper

    for (module, name), phase in PHASES.items():
        owner = importlib.import_module(module)
        if hasattr(owner, name):  # project_ahead is new in (b)
            setattr(owner, name, timed(getattr(owner, name), phase))
    work = Path(tempfile.mkdtemp(prefix="throughput-"))
    cfg = load_sweep(tree / "sweeps" / "hard.yaml")
    source = cfg.data.source.model_copy(update={"path": str(table)})
    cfg = cfg.model_copy(
        update={
            "storage_path": str(work / "ray"),
            "data": cfg.data.model_copy(update={"source": source, "cache_dir": str(work / "cache")}),
            "tracking": cfg.tracking.model_copy(update={"uri": f"sqlite:///{work}/mlflow.db"}),
        }
    )
    start = time.perf_counter()
    outcome = sweep.run_sweep(cfg)
    phases["wall"] = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    outcome.methods.to_csv(out / "methods.csv", index=False)
    (out / "timing.json").write_text(json.dumps({"phases": phases, "trials": len(outcome.leaderboard)}))


if __name__ == "__main__":
    run_arm(Path(sys.argv[1]).resolve(), Path(sys.argv[2]), Path(sys.argv[3]))
