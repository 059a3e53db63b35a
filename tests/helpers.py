"""Plain helpers shared by test modules (fixtures live in the conftest.py files; what
a test imports lives here, never in a conftest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def leftovers(parent: Path) -> list[str]:
    """Hidden staging entries the exporter may have left in `parent`."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".cliprt-"))


def call_with_timeout(call: Callable[[], Any], timeout: float) -> tuple[bool, BaseException | None]:
    """Runs `call` in a daemon thread: (still running after `timeout` seconds, the
    exception it raised or None). A hang (a FIFO read blocks forever) cannot stall the
    test run: the thread is left behind as a daemon."""
    box: list[BaseException | None] = [None]

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            box[0] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return thread.is_alive(), box[0]
