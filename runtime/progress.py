"""A tiny stderr progress line (tqdm is not a runtime dependency)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """Prints ``label: done/total (rate/s)`` on one stderr line, at most every
    `interval_s` seconds, and a final line on close.

    Args:
        total: items expected.
        label: what is counted ("images", "texts").
        stream: where to write (default sys.stderr).
        interval_s: minimum seconds between redraws.
    """

    def __init__(
        self, total: int, label: str, *, stream: TextIO | None = None, interval_s: float = 0.2
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self.done = 0
        self._start = time.perf_counter()
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, n: int = 1) -> None:
        """Counts `n` more items done."""
        with self._lock:
            self.done += n
            now = time.perf_counter()
            if now - self._last >= self.interval_s or self.done >= self.total:
                self._last = now
                self._draw(now, end="")

    def close(self) -> None:
        """Draws the final count and ends the line."""
        with self._lock:
            self._draw(time.perf_counter(), end="\n")

    def _draw(self, now: float, end: str) -> None:
        elapsed = max(now - self._start, 1e-9)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        self.stream.write(
            f"\r{self.label}: {self.done}/{self.total} ({pct:.0f}%, {self.done / elapsed:.1f}/s){end}"
        )
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
