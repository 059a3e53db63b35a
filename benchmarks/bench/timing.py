"""Repeated timing of one callable: warm-up, per-repeat wall times, percentiles.

Every raw figure is kept (the JSON report carries all per-repeat times) so a reader can
recompute any statistic; the summary uses medians, which shrug off the odd slow repeat
that a shared machine produces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# A summary value in bench.json: a count, a time in ms, a flag or the raw times.
SummaryValue = int | float | bool | list[float]


@dataclass(frozen=True)
class Timing:
    """Wall times of `repeats` calls, each processing `items` items.

    Attributes:
        items: items (images or texts) per call.
        times_ms: wall time of every timed call, in ms, in the order they ran.
        warmup: untimed calls made first.
    """

    items: int
    times_ms: tuple[float, ...]
    warmup: int
    # Extra flags for the JSON summary, e.g. {"interleaved": True}.
    meta: dict[str, bool] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) of the per-call times, in ms (linear interpolation)."""
        return float(np.percentile(np.asarray(self.times_ms), q))

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p90_ms(self) -> float:
        return self.percentile(90)

    @property
    def p99_ms(self) -> float:
        # With fewer than 100 repeats this is close to the slowest call.
        return self.percentile(99)

    @property
    def throughput(self) -> float:
        """Items per second at the median call time."""
        p50 = self.p50_ms
        return self.items * 1000.0 / p50 if p50 > 0 else float("inf")

    def summary(self) -> dict[str, SummaryValue]:
        """Percentiles, throughput and every raw time, ready for JSON."""
        t = np.asarray(self.times_ms)
        return {
            "items": self.items,
            "repeats": len(self.times_ms),
            "warmup": self.warmup,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": float(t.mean()),
            "min_ms": float(t.min()),
            "max_ms": float(t.max()),
            "std_ms": float(t.std()),
            "throughput_per_s": self.throughput,
            "times_ms": list(self.times_ms),
            **self.meta,
        }


def measure(
    fn: Callable[[], object],
    *,
    items: int,
    repeats: int,
    warmup: int,
    sync: Callable[[], None] | None = None,
) -> Timing:
    """Times `repeats` calls of `fn` after `warmup` untimed ones.

    Args:
        fn: the work of one call; its result is dropped.
        items: items processed per call (for throughput).
        repeats: timed calls (>= 1).
        warmup: untimed calls first (allocator, thread pool and cache warm-up).
        sync: called after `fn` inside the timed region, e.g. torch.cuda.synchronize,
            so asynchronous device work is counted.

    Returns:
        The Timing, times in ms.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
    times: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        if sync is not None:
            sync()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return Timing(items=items, times_ms=tuple(times), warmup=warmup)


def measure_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    items: int,
    repeats: int,
    warmup: int,
    syncs: dict[str, Callable[[], None] | None] | None = None,
    min_time_s: float = 0.0,
    max_repeats: int | None = None,
) -> dict[str, Timing]:
    """Times several callables round-robin: repeat i of each runs before repeat i + 1 of
    any, so that on a shared machine every side meets the same spells of load.

    Args:
        fns: name -> the work of one call.
        items, repeats, warmup: as for `measure` (warm-up calls also round-robin).
        syncs: name -> called after that callable inside its timed region.
        min_time_s: after `repeats` rounds, go on while the timed rounds took less than
            this many seconds in all (cheap calls get more samples for free), up to
            `max_repeats` rounds (default 5 x repeats).

    Returns:
        name -> Timing.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    syncs = syncs or {}
    cap = max(repeats, max_repeats if max_repeats is not None else 5 * repeats)
    times: dict[str, list[float]] = {name: [] for name in fns}
    timed_s = 0.0
    i = 0
    while i < warmup + repeats or (timed_s < min_time_s and i < warmup + cap):
        for name, fn in fns.items():
            sync = syncs.get(name)
            t0 = time.perf_counter_ns()
            fn()
            if sync is not None:
                sync()
            if i >= warmup:
                elapsed = (time.perf_counter_ns() - t0) / 1e6
                times[name].append(elapsed)
                timed_s += elapsed / 1000
        i += 1
    return {
        name: Timing(items=items, times_ms=tuple(ts), warmup=warmup, meta={"interleaved": True})
        for name, ts in times.items()
    }
