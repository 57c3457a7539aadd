"""One short run of the fault-injection harness (``bench/chaos.py --runs 1``): each fault kind once, no invariant broken.

The full harness (4 runs of each kind) is a benchmark, not part of CI; this
run proves every kind of fault is really injected and survived.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_every_fault_once_breaks_no_invariant(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "chaos.py"), "--runs", "1", "--seed", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=2400, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0 and "violations" in done.stdout, done.stdout[-5000:] + done.stderr[-5000:]
    report = json.loads(out.read_text())
    assert report["violations"] == [], report
    assert done.stdout.strip().splitlines()[-1] == "chaos: 5 runs, 0 violations"
    injected = {row["fault"].split()[0]: row["faults injected"] for row in report["rows"]}
    expected = {"node": 1, "actor": 1, "driver": 1, "tracking": 1, "disk": 1 if report["disk_mounted"] else 0}
    assert injected == expected, report["rows"]  # every fault really happened (the disk one needs root to mount a tmpfs)
