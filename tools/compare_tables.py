"""Print how a reproduced Table 1 differs from the committed one (seed means, paper columns first).

Usage: python tools/compare_tables.py COMMITTED.csv REPRODUCED.csv
"""

from __future__ import annotations

import sys

from sdm import table1 as t1
from sdm.results import read_table1


def main(committed: str, reproduced: str) -> int:
    a, b = read_table1(committed), read_table1(reproduced)
    columns = [f"m{m}_{k}" for m in (32, 64) for k in t1.TABLE_METRICS]
    diff = (b[columns] - a[columns]).round(3)
    print(f"Table 1, reproduced minus committed ({reproduced} - {committed}):")
    print(diff.to_string())
    print(f"largest absolute difference: {diff.abs().max().max():.3f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
