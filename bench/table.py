"""Cell formatting shared by the benchmarks' result tables (run.sh, obs.sh, auth.sh): each
script's Python part imports it (BENCH_DIR on sys.path) and keeps only its own rows."""

import statistics


def num(x, unit=""):
    """A number for a table cell: thousands separated from 100 on, two decimals below."""
    if x is None:
        return "—"
    if abs(x) >= 100:
        return f"{x:,.0f}{unit}"
    return f"{x:.2f}{unit}"


def spread(xs, unit=""):
    """The median of the rounds' values, and their range when there was more than one round."""
    if not xs:
        return "—"
    if len(xs) == 1:
        return num(xs[0], unit)
    return f"{num(statistics.median(xs), unit)} ({num(min(xs))}–{num(max(xs))})"


def times(x):
    return "—" if x is None else f"{x:.2f}×"


def met(ok):
    return "—" if ok is None else ("yes" if ok else "**no**")
