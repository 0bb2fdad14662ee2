"""Timing shared by the benchmarks: interleaved rounds, medians, one table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def measure(
    candidates: dict[str, Callable[[], object]], rounds: int, repeat: int = 1
) -> dict[str, float]:
    """Median seconds of each candidate, timed in interleaved rounds.

    Each round calls every candidate once untimed (absorbing the previous candidate's
    worker threads winding down), then ``repeat`` times timed. Interleaving spreads the
    machine's drift evenly over the candidates.
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            fn()
            for _ in range(repeat):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(medians: dict[str, float], peers: list[str], flops: float | None = None) -> str:
    """Rows of name, median ms, ratio to the fastest peer, GFLOP/s."""
    best = min(medians[p] for p in peers)
    lines = [
        f"{'candidate':40} {'median ms':>10} {'vs best peer':>13}"
        + (f" {'GFLOP/s':>8}" if flops else "")
    ]
    for name, med in medians.items():
        line = f"{name:40} {med * 1e3:10.2f} {med / best:12.2f}x"
        if flops:
            line += f" {flops / med / 1e9:8.1f}"
        lines.append(line)
    return "\n".join(lines)
