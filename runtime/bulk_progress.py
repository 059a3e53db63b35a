"""Progress of a bulk job: a tqdm bar (rate, ETA) on a terminal, periodic log lines when
stderr is not one (a log file, a CI job, a cluster's captured output)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from cliprt.errors import InputError


def _tqdm() -> type:
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise InputError(
            "bulk embedding draws its progress with tqdm, which is not installed; "
            'pip install "cliprt[bulk]" (or pass --quiet)'
        ) from exc
    return tqdm


class JobProgress:
    """Counts a job's files; draws a tqdm bar on a TTY, else prints a line (count, rate,
    ETA, formatted by tqdm) every `log_every_s` seconds and at the end.

    Args:
        total: files expected (None: unknown, no ETA).
        initial: files already done (a resumed job's finished shards).
        stream: where a bar is drawn (default sys.stderr).
        log_every_s: seconds between log lines when `stream` is not a terminal.
        enabled: False draws and logs nothing.
    """

    def __init__(
        self,
        total: int | None,
        *,
        initial: int = 0,
        stream: TextIO | None = None,
        log_every_s: float = 30.0,
        enabled: bool = True,
    ) -> None:
        self.total = total
        self.done = initial
        self._initial = initial
        self._stream = stream or sys.stderr
        self._log_every_s = log_every_s
        self._enabled = enabled
        self._start = time.monotonic()
        self._last_log = self._start
        self._tqdm = _tqdm()
        isatty = getattr(self._stream, "isatty", None)
        self._bar = None
        if enabled and isatty is not None and isatty():
            self._bar = self._tqdm(
                total=total, initial=initial, unit="img", file=self._stream, dynamic_ncols=True
            )

    def update(self, n: int) -> None:
        """Counts `n` more files done (embedded or failed)."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if self._enabled and now - self._last_log >= self._log_every_s:
            self._last_log = now
            self._log(now)

    def line(self, now: float | None = None) -> str:
        """The current state as one line: count, percentage, elapsed, ETA and rate."""
        now = time.monotonic() if now is None else now
        return self._tqdm.format_meter(  # type: ignore[attr-defined]
            self.done - self._initial,
            None if self.total is None else self.total - self._initial,
            now - self._start,
            unit="img",
            prefix="embed",
        )

    def _log(self, now: float) -> None:
        msg = f"{self.line(now)} ({self.done}/{self.total if self.total is not None else '?'} files in all)"
        print(msg, file=self._stream, flush=True)

    def close(self) -> None:
        """Draws or logs the final state."""
        if self._bar is not None:
            self._bar.close()
        elif self._enabled:
            self._log(time.monotonic())
