"""Keep every core busy for a while: run a timing-sensitive test beside it to shake out races.

    python bench/cpu_hog.py --seconds 900 &      # one spinning process per core
    pytest tests/test_multinode.py; kill %1

Each process spins in pure Python at normal priority, so the test's own
processes get about half of each core, as on a machine busy with something else.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time


def spin(until: float, parent: int) -> None:
    x = 0
    while time.monotonic() < until and os.getppid() == parent:  # ends with the hog, however it is stopped
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to spin")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="spinning processes (default: one per core)")
    args = parser.parse_args()
    until = time.monotonic() + args.seconds
    workers = [multiprocessing.Process(target=spin, args=(until, os.getpid()), daemon=True) for _ in range(args.procs)]
    for worker in workers:
        worker.start()
    print(f"cpu_hog: {args.procs} process(es) spinning for {args.seconds:.0f} s", flush=True)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
