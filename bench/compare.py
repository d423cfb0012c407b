"""Compare a benchmark run with a saved baseline, row by row, in one table.

    .venv/bin/python bench/compare.py BASELINE.json [CURRENT.json]

CURRENT defaults to the latest run of the same benchmark (bench/results/<name>-latest.json).
Every script also takes --baseline FILE to print this comparison after its own table.
"""

import sys

from environment import RESULTS
from report import compare, load


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    baseline = load(sys.argv[1])
    current = load(sys.argv[2] if len(sys.argv) == 3 else RESULTS / f"{baseline['benchmark']}-latest.json")
    compare(baseline, current)
    return 0


if __name__ == "__main__":
    sys.exit(main())
