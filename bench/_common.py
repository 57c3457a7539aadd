"""What every script in bench/ shares: where this checkout and the shared data are, and musicvae imported from this checkout.

Each script starts with ``from _common import ROOT, SHARED`` (bench/ is on the
path of a script run as ``python bench/x.py``), which puts the checkout first on
``sys.path``, so a bench measures this tree's musicvae even where another is installed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSICVAE_SHARED_DATA", ROOT.parent / "shared" / "data"))  # ../shared/data, or where the variable says

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def one_thread_per_worker() -> None:
    """In a worker of a process pool: torch and the BLAS libraries on one thread each, as Ray gives a one-CPU trial.

    Two workers each running OpenBLAS's default two threads on two cores made a
    GMM fit 80x slower (35 s against 0.43 s at k = 20 on 1000 x 40 features).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)
