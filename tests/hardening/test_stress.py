"""The bad-input corpus (tests/hardening/corpus.py, generated here) through
`encode_images`, `cliprt embed` and `cliprt classify`: nothing crashes or hangs, every
real image embeds, every failure is a typed error that names its item.

Each case is tallied (tests/hardening/support.py); the README's Reliability figures
come from that tally.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cliprt.errors import InputError
from tests.hardening.corpus import Case, build_corpus
from tests.hardening.support import tally
from tests.helpers import call_with_timeout

CLI_TIMEOUT_S = 120
API_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def _call_with_timeout(call: Any) -> tuple[str, BaseException | None]:
    """("done" | "hang", exception raised or None)."""
    hung, exc = call_with_timeout(call, API_TIMEOUT_S)
    return ("hang" if hung else "done"), exc


def _api_outcome(case: Case, index: int, exc: BaseException | None, state: str) -> str:
    if state == "hang":
        return "hang"
    if exc is None:
        return "ok"
    if isinstance(exc, InputError) and f"image {index} ({str(case.path)!r})" in str(exc):
        return "typed_error"
    return "foreign_exception" if not isinstance(exc, InputError) else "unnamed_error"


def test_encode_images_corpus(shapes: Any, corpus: list[Case]) -> None:
    """Each case alone, then behind two good images (the error names item 2)."""
    good = next(c.path for c in corpus if c.expect == "ok")
    problems = []
    for case in corpus:
        for items, index in (([case.path], 0), ([good, good, case.path], 2)):
            state, exc = _call_with_timeout(lambda items=items: shapes.encode_images(items))
            outcome = _api_outcome(case, index, exc, state)
            tally("encode_images", outcome)
            allowed = {"ok": {"ok"}, "error": {"typed_error"}}.get(
                case.expect, {"ok", "typed_error"}
            )
            if outcome not in allowed:
                problems.append((case.path.name, index, outcome, repr(exc)[:300]))
    assert not problems, problems


def test_encode_images_non_path_inputs(shapes: Any) -> None:
    """Inputs that are not paths: bytes, arrays, objects of the wrong type."""
    items: list[tuple[object, str]] = [
        (b"", "error"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 10, "error"),
        (bytearray(b"GIF89a"), "error"),
        (np.zeros((0, 5, 3), np.uint8), "error"),
        (np.zeros((4, 4, 3), np.float64), "error"),
        (np.zeros((4, 4, 2), np.uint8), "error"),
        (np.zeros((4, 4, 4), np.uint8), "ok"),
        (np.zeros((4, 4), np.uint8), "ok"),
        (42, "error"),
        (None, "error"),
        (3.5, "error"),
        ("", "error"),
        ("nul\0byte.png", "error"),
        (Path("/definitely/not/here.png"), "error"),
    ]
    problems = []
    for item, expect in items:
        state, exc = _call_with_timeout(lambda item=item: shapes.encode_images([item]))
        if state == "hang":
            outcome = "hang"
        elif exc is None:
            outcome = "ok"
        elif isinstance(exc, InputError) and "image 0 (" in str(exc):
            outcome = "typed_error"
        else:
            outcome = "foreign_exception"
        tally("encode_images", outcome)
        if outcome != {"ok": "ok", "error": "typed_error"}[expect]:
            problems.append((repr(item)[:60], outcome, repr(exc)[:300]))
    assert not problems, problems


def _cli(command: str, case: Case, out_dir: Path, i: int) -> tuple[str, str]:
    """Runs `cliprt COMMAND` on one case; returns (outcome, detail)."""
    args = [sys.executable, "-m", "cliprt.cli", command, "shapes", str(case.path)]
    if command == "embed":
        # fail: a bad file must stop the run with its typed, named error (the default,
        # skip, reports it in the failures file and goes on: tests/bulk).
        args += ["-o", str(out_dir / f"{i}.npy"), "--on-error", "fail"]
    else:
        args += ["--labels", "a red circle", "a blue square"]
    args += ["--device", "cpu", "--precision", "fp32", "--threads", "1", "-q"]
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, errors="replace", timeout=CLI_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return "hang", ""
    err = done.stderr
    if done.returncode < 0 or done.returncode > 1:
        return "crash", f"rc {done.returncode}: {err[-500:]}"
    if "Traceback" in err:
        return "traceback", err[-1500:]
    if done.returncode == 0:
        return "ok", ""
    # Typed: the CLI's one-line error that names the file.
    if err.startswith(f"cliprt {command}: error:") and case.path.name in err:
        return "typed_error", ""
    return "unnamed_error", err[-500:]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["embed", "classify"])
def test_cli_corpus(command: str, corpus: list[Case], tmp_path: Path) -> None:
    """Every case through the real command, in a fresh process each, two at a time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(
            pool.map(lambda ic: _cli(command, ic[1], tmp_path, ic[0]), enumerate(corpus))
        )
    problems = []
    for case, (outcome, detail) in zip(corpus, results, strict=True):
        tally(f"cliprt {command}", outcome)
        allowed = {"ok": {"ok"}, "error": {"typed_error"}}.get(case.expect, {"ok", "typed_error"})
        if outcome not in allowed:
            problems.append((case.path.name, outcome, detail))
    assert not problems, problems
