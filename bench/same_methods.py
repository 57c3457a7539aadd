"""Whether two method tables hold the same numbers: for a change that must not move any result (a refactor).

    python bench/same_methods.py BEFORE/methods.csv AFTER/methods.csv

The tables are ``bench/sweep_arm.py``'s (one per tree, the same sweep file and table). Prints whether both have
the same methods and columns, the largest absolute difference over every numeric column that is not a time, and
whether every other column is equal; exits 1 when anything differs (a difference above ``--tolerance``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

TIMING = ("seconds", "time")  # columns that measure the machine, not the result


def compare(before: pd.DataFrame, after: pd.DataFrame, tolerance: float) -> bool:
    before, after = before.set_index("method").sort_index(), after.set_index("method").sort_index()
    same_rows, same_columns = set(before.index) == set(after.index), list(before.columns) == list(after.columns)
    print(f"methods: {len(before)} before, {len(after)} after, the same: {same_rows}; the same columns: {same_columns}")
    if not same_rows:
        return False
    columns = [c for c in before.columns if c in after.columns and not any(t in c for t in TIMING)]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(before[c]) and pd.api.types.is_numeric_dtype(after[c])]
    a, b = before.loc[after.index, numeric].to_numpy(float), after[numeric].to_numpy(float)
    both_nan = np.isnan(a) & np.isnan(b)
    difference = np.where(both_nan, 0.0, np.abs(a - b))  # NaN where only one side is NaN: a difference
    largest = float(np.max(np.nan_to_num(difference, nan=np.inf))) if difference.size else 0.0
    others = [c for c in columns if c not in numeric]
    equal = all((before.loc[after.index, c].astype(str) == after[c].astype(str)).all() for c in others)
    print(f"numeric columns compared: {len(numeric)} ({len(numeric) * len(after)} numbers); largest absolute difference: {largest:.3g}")
    print(f"other columns ({len(others)}) equal: {equal}")
    return same_columns and equal and largest <= tolerance


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tolerance", type=float, default=1e-12)
    args = parser.parse_args()
    return 0 if compare(pd.read_csv(args.before), pd.read_csv(args.after), args.tolerance) else 1


if __name__ == "__main__":
    sys.exit(main())
