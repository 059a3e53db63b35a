"""What the hardening tests import (fixtures stay in conftest.py): the tally of cases
that the README's Reliability section quotes, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

# surface -> outcome -> count. Outcomes: "ok", "typed_error", "foreign_exception",
# "crash" (killed by a signal), "hang" (past its timeout), "traceback" (CLI).
TALLY: dict[str, Counter[str]] = {}


def tally(surface: str, outcome: str) -> None:
    """Counts one case of `surface` with `outcome`."""
    TALLY.setdefault(surface, Counter())[outcome] += 1


def run_cli(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`cliprt ARGS` in a fresh interpreter (python -m cliprt.cli), text output."""
    return subprocess.run(
        [sys.executable, "-m", "cliprt.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        errors="replace",
    )
