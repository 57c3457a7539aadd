"""What a sweep prints: our own lines and a live progress display, third-party chatter off unless ``-v``.

A sweep runs Ray, Ray Data, Tune, Optuna and torch, and each of them talks:
Tune's 40-line result box per trial, a "Checkpoint successfully created" line
per checkpoint, Ray Data's executor lines, Optuna's study line. By default
they are quieted where they are produced (each library's verbosity or
logger level; nothing greps the output), and the sweep shows instead

* a progress bar while features are extracted (files done, tracks per second, skipped),
* a progress bar while the trials run (done / running / failed of the total,
  the best objective so far, elapsed time and an ETA), with a line for every
  failed trial as it fails,

then the leaderboard. On a terminal the bars are live; in a log (CI, a pipe)
each is one line when it ends. ``musicvae -v`` (or ``MUSICVAE_VERBOSE=1``)
leaves every library's own output on, Tune's tables included. Errors and
skipped files are never quieted.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager, redirect_stdout
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

VERBOSE_ENV = "MUSICVAE_VERBOSE"
# Loggers quieted to warnings (errors for Ray Data, whose one warning is that its
# progress bars are off: ours replace them) unless verbose. Ray's own, on the driver, is
# set by ray.init(logging_level=...), see ray_logging_level().
QUIET_LOGGERS = {"ray.tune": logging.WARNING, "ray.train": logging.WARNING, "ray.data": logging.ERROR}

# Off a terminal (a log, CI, a pipe) nothing wraps a line, so do not cut the bars to rich's 80 columns.
console = Console(stderr=False, highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def verbose() -> bool:
    """Set by the CLI's ``-v``; workers inherit it through the environment (see :func:`worker_env`)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    os.environ[VERBOSE_ENV] = "1" if on else "0"


def worker_env() -> dict[str, str]:
    """For ray.init's runtime_env: trials on every node quiet (or not) like the driver."""
    return {VERBOSE_ENV: "1" if verbose() else "0"}


def ray_logging_level() -> int:
    return logging.INFO if verbose() else logging.ERROR  # "Started a local Ray instance", the token-auth notice


def quiet_libraries() -> None:
    """Lower the libraries' loggers in this process (the driver, or a trial's worker) unless verbose."""
    if verbose():
        return
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per downloaded artifact (musicvae report)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # "Creating initial MLflow database tables"; read when mlflow is imported
    if "mlflow" in sys.modules:
        logging.getLogger("mlflow").setLevel(logging.WARNING)
    if "optuna" in sys.modules:
        sys.modules["optuna"].logging.set_verbosity(logging.WARNING)  # "A new study created in memory"


def tune_verbosity() -> int:
    """Tune's ``RunConfig(verbose=...)``: 0 is silent (our progress bar instead), 1 its status tables and result boxes."""
    return 1 if verbose() else 0


@contextmanager
def silenced() -> Iterator[None]:
    """Nothing of musicvae's own on stdout: its lines and its progress bars (the Python API's ``quiet=True``)."""
    before = console.quiet
    console.quiet = True
    try:
        with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
            yield
    finally:
        console.quiet = before


def new_progress(*columns: Any) -> Progress:
    # Off a terminal rich draws nothing while running and the final state once when stopped: one line in a log.
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(), *columns, console=console)


@contextmanager
def extraction_progress(total: int) -> Iterator[Any]:
    """A bar over the files being decoded; yields ``advance(done, skipped)``, called as each block of files comes back."""
    progress = new_progress(TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[skipped]}"), TimeElapsedColumn())
    task = progress.add_task("Extracting features", total=total, rate="", skipped="")
    start = time.perf_counter()
    counts = {"done": 0, "skipped": 0}

    def advance(done: int, skipped: int) -> None:
        counts["done"] += done
        counts["skipped"] += skipped
        rate = counts["done"] / max(time.perf_counter() - start, 1e-9)
        progress.update(task, advance=done, rate=f"{rate:.0f} tracks/s", skipped=f"{counts['skipped']} skipped" if counts["skipped"] else "")

    with progress:
        yield advance
