"""`cliprt bench serve` end to end on the shipped shapes model, as the user runs it: the
in-process batcher and two real `cliprt serve` subprocesses under closed and open loop;
every figure lands in serve.json, serve.md and serve.png."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="needs the serve extra (uvicorn)")
pytest.importorskip("matplotlib", reason="needs the bench extra (matplotlib)")


def _bench(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cliprt.cli", "bench", "serve", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_closed_and_open_loop_in_process_and_over_http(tmp_path: Path) -> None:
    proc = _bench(
        ["shapes", "--precision", "fp32", "--concurrency", "1,4", "--http-concurrency", "1,4",
         "--rates", "0.05", "--min-requests", "8", "--items", "8", "--threads", "1", "--paired", "6",
         "--out", str(tmp_path)]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "serve.json").read_text())
    rows = result["rows"]
    for modality in ("image", "text"):
        mine = [r for r in rows if r["modality"] == modality]
        assert {r["loop"] for r in mine} == {"ceiling", "closed", "open", "paired"}
        # Each closed-loop level is compared with the ceiling measured around it.
        assert all(
            r["ceiling_per_s"] > 0
            for r in mine
            if r["loop"] == "closed" and r["target"] == "in-process"
        )
        paired = {(r["target"], r["mode"]): r for r in mine if r["loop"] == "paired"}
        assert set(paired) == {
            ("in-process", "direct"),
            ("in-process", "batched"),
            ("http", "batched"),
        }
        for r in paired.values():
            assert (
                r["requests"] == 6
                and 0 < r["p50_ms"] <= r["p99_ms"]
                and r["cpu_ms_per_request"] >= 0
            ), r
        closed = {(r["target"], r["mode"], r["concurrency"]) for r in mine if r["loop"] == "closed"}
        assert closed == {
            *(("in-process", m, c) for m in ("batched", "unbatched", "direct") for c in (1, 4)),
            *(("http", m, c) for m in ("batched", "unbatched") for c in (1, 4)),
        }
        for r in mine:
            if r["loop"] == "closed":
                # The steady-state window: warm-up and drain issued, never timed.
                assert 0 < r["answered_in_window"] < r["issued"], r
                assert 0 < r["window_s"] == r["wall_s"], r
            if r["loop"] in ("closed", "open"):
                assert r["requests"] >= 8 and not r["errors"], r
                assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"], r
            if r["loop"] != "paired":
                assert r["throughput_per_s"] > 0
            if r["loop"] in ("closed", "ceiling"):
                # Process CPU time per request; /proc counts the server's in 10 ms ticks.
                assert r["cpu_ms_per_request"] > 0 or r["target"] == "http", r
                assert r["cpu_ms_per_request"] >= 0, r
        unbatched = [r for r in mine if r["mode"] == "unbatched" and r["target"] == "in-process"]
        assert all(set(r["batch_sizes"]) == {"1"} for r in unbatched), unbatched
    assert set(result["server_exit_codes"].values()) == {0}
    assert {c["modality"] for c in result["checks"]} == {"image", "text"}
    assert all("c1_http_overhead_ms" in c for c in result["checks"])
    assert all(c["c1_from"] == "paired" for c in result["checks"])
    md = (tmp_path / "serve.md").read_text()
    assert "## The targets, as measured" in md and "### fp32 texts" in md
    assert "uptime at start" in md
    assert (tmp_path / "serve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args",
    [
        ["shapes", "--concurrency", "0"],
        ["shapes", "--rates", "x"],
        ["shapes", "--modality", "audio"],
    ],
)
def test_bad_arguments_are_refused(args: list[str]) -> None:
    proc = _bench(args)
    assert proc.returncode == 2 and "error:" in proc.stderr


def test_closed_loop_times_the_steady_state_only() -> None:
    from cliprt.bench.serve_load import closed_loop

    started: list[int] = []

    def make_call() -> Callable[[int], None]:
        def call(i: int) -> None:
            started.append(i)
            time.sleep(0.002)

        return call

    res = closed_loop(make_call, concurrency=4, requests=40, warmup=8)
    # warm-up + timed + one drain request per caller, each issued once.
    assert sorted(started) == list(range(8 + 40 + 4))
    assert res.extra["issued"] == 52
    # Neither the warm-up nor the drain is inside the window.
    assert 0 < res.extra["answered_in_window"] <= 52 - 8
    assert 0 < res.requests <= 52 - 8 and not res.errors
    assert res.extra["counted_per_s"] == pytest.approx(res.extra["answered_in_window"] / res.wall_s)
    # 4 callers that never pause, 2 ms a call: Little's law gives 4 / mean latency.
    assert res.mean_ms is not None
    assert res.throughput_per_s == pytest.approx(4 / (res.mean_ms / 1000))
    assert 0 < res.throughput_per_s <= 2000  # every call sleeps at least 2 ms
