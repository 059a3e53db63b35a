"""Fixtures of the hardening tests: the shipped `shapes` model, a writable copy of its
folder, and the report of the tally (tests/hardening/support.py) that the README's
Reliability section quotes.

The tally: every stress and fuzz case adds its outcome to TALLY; the session prints it
at the end, and writes it as JSON where CLIPRT_RELIABILITY_OUT names a file (that is how
benchmarks/results/reliability.json is made: see the README).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.support import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    report = {
        surface: {"cases": sum(c.values()), **dict(sorted(c.items()))}
        for surface, c in sorted(TALLY.items())
    }
    terminalreporter.write_sep("-", "cliprt hardening tally")
    for surface, counts in report.items():
        terminalreporter.write_line(f"{surface}: {counts}")
    out = os.environ.get("CLIPRT_RELIABILITY_OUT")
    if out:
        Path(out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        terminalreporter.write_line(f"wrote {out}")


@pytest.fixture(scope="session")
def shapes() -> Any:
    """The shipped model, fp32 on the CPU, one thread (a shared box)."""
    import cliprt

    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=1, spinning=False)
    yield model
    model.close()


@pytest.fixture
def shapes_copy(tmp_path: Path) -> Path:
    """A private, writable copy of the shipped model folder."""
    from cliprt.shipped import shipped_folder

    folder = shipped_folder("shapes")
    assert folder is not None
    return Path(shutil.copytree(folder, tmp_path / "shapes"))
