"""The README's Reliability figures are those the hardening tests recorded
(benchmarks/results/reliability.json), and that record covers today's corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.hardening.corpus import build_corpus

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "benchmarks" / "results" / "reliability.json"
BAD = ("crash", "hang", "foreign_exception", "traceback", "unnamed_error")


def render_table(report: dict[str, Any]) -> str:
    """The README table of a tally report (tests/hardening/conftest.py writes it from support.TALLY)."""
    lines = [
        "| surface | cases | handled (ok) | typed errors | failed badly |",
        "|---|---:|---:|---:|---:|",
    ]
    total = [0, 0, 0, 0]
    for surface, counts in report.items():
        row = [
            counts["cases"],
            counts.get("ok", 0),
            counts.get("typed_error", 0),
            sum(counts.get(k, 0) for k in BAD),
        ]
        total = [t + r for t, r in zip(total, row, strict=True)]
        lines.append(f"| {surface} | " + " | ".join(map(str, row)) + " |")
    lines.append("| **all** | " + " | ".join(f"**{n}**" for n in total) + " |")
    return "\n".join(lines)


def test_readme_table_is_the_recorded_one() -> None:
    report = json.loads(RECORD.read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- reliability-table -->") + len("<!-- reliability-table -->")
    table = readme[start : readme.index("<!-- /reliability-table -->")].strip()
    assert table == render_table(report)
    assert all(sum(c.get(k, 0) for k in BAD) == 0 for c in report.values())


def test_record_covers_todays_corpus(tmp_path: Path) -> None:
    """Changing the corpus means rerunning the recorded command."""
    report = json.loads(RECORD.read_text(encoding="utf-8"))
    n = len(build_corpus(tmp_path))
    assert report["cliprt embed"]["cases"] == n
    assert report["cliprt classify"]["cases"] == n
