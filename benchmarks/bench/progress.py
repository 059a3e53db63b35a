"""Progress lines on stderr while a benchmark runs (stdout keeps the result table)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class BenchProgress:
    """Prints `[bench mm:ss] message` lines, with a step counter when a total is known."""

    def __init__(self, *, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.start = time.perf_counter()
        self.total = 0
        self.done = 0

    def __call__(self, message: str) -> None:
        self.say(message)

    def say(self, message: str) -> None:
        if self.quiet:
            return
        elapsed = int(time.perf_counter() - self.start)
        step = f" {self.done}/{self.total}" if self.total else ""
        print(
            f"[bench {elapsed // 60:02d}:{elapsed % 60:02d}{step}] {message}",
            file=self.stream,
            flush=True,
        )

    def step(self, message: str) -> None:
        """Counts one measured unit of work and reports it."""
        self.done += 1
        self.say(message)
