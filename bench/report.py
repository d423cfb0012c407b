"""Percentiles, the printed table, the JSON under bench/results/, and comparing two runs.

A result file is ``{"benchmark", "started_at", "machine", "config", "key", "rows"}``:
``rows`` are flat dicts, ``key`` names the columns that identify a row (e.g. the waitlist
size), so two runs of one benchmark can be compared row by row.
"""

import json
import math
from datetime import datetime
from pathlib import Path

from environment import RESULTS


def percentiles(samples_ms):
    """p50/p95/p99/max of latencies in ms (nearest rank), with the count and mean."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}

    def rank(p):
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {
        "n": len(ordered),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def print_table(rows, columns, title=None):
    """Rows as an aligned text table; columns are (key, heading) pairs."""
    if title:
        print(f"\n{title}")
    cells = [[heading for _, heading in columns]]
    cells += [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for index, line in enumerate(cells):
        print("  ".join(text.rjust(width) for text, width in zip(line, widths, strict=False)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def print_machine(machine, **context):
    facts = {**machine, **context}
    print("\n" + "; ".join(f"{name.replace('_', ' ')}: {_cell(value)}" for name, value in facts.items()))


def save(result):
    """Write the result as bench/results/<benchmark>-<time>.json and <benchmark>-latest.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    text = json.dumps(result, indent=2, default=str)
    path = RESULTS / f"{result['benchmark']}-{stamp}.json"
    path.write_text(text)
    (RESULTS / f"{result['benchmark']}-latest.json").write_text(text)
    print(f"\nwritten {path.relative_to(RESULTS.parent.parent)}")
    return path


def load(path):
    return json.loads(Path(path).read_text())


def compare(baseline, current):
    """Print each numeric column of `current` next to the baseline's, row by row."""
    if baseline["benchmark"] != current["benchmark"]:
        raise SystemExit(f"cannot compare a {baseline['benchmark']} run with a {current['benchmark']} run")
    key = current["key"]
    before = {tuple(row[k] for k in key): row for row in baseline["rows"]}
    lines = []
    for row in current["rows"]:
        old = before.get(tuple(row[k] for k in key))
        if old is None:
            continue
        for metric, value in row.items():
            if metric in key or not _is_number(value) or not _is_number(old.get(metric)):
                continue
            change = (value - old[metric]) / old[metric] * 100 if old[metric] else None
            lines.append(
                {
                    **{k: row[k] for k in key},
                    "metric": metric,
                    "baseline": old[metric],
                    "current": value,
                    "change": None if change is None else f"{change:+.0f}%",
                }
            )
    columns = [(k, k) for k in key] + [
        ("metric", "metric"),
        ("baseline", "baseline"),
        ("current", "current"),
        ("change", "change"),
    ]
    print_table(
        lines,
        columns,
        title=f"Compared with {baseline['started_at']} (commit {baseline['machine'].get('commit')}, "
        f"load {baseline['machine'].get('load_average_at_start')})",
    )


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return " ".join(_cell(item) for item in value)
    return str(value)
