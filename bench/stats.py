"""Latency percentiles for the benchmark tables."""

from __future__ import annotations


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (0..1) of latencies in seconds, in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def latency_note(values: list[float]) -> str:
    return f"p50 {pct(values, .5):.1f} ms, p95 {pct(values, .95):.1f} ms, p99 {pct(values, .99):.1f} ms"
