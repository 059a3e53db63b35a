"""The top-k benchmark runs end to end on a tiny database and reports what it promises."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cliprt.bench import topk_bench


def test_run_reports_every_method_and_ratio() -> None:
    rows = topk_bench.run([300], dim=16, k=5, batches=[1, 3], threads=2, repeats=1)
    methods = {(r["method"], r["dtype"]) for r in rows}
    assert {("cliprt", "fp32"), ("cliprt", "fp16"), ("cliprt", "int8")} <= methods
    assert ("numpy matmul+argpartition", "fp32") in methods
    for r in rows:
        assert r["ms"] > 0 and r["floor_ms"] > 0 and r["bytes"] > 0
        # Fields are rounded to 3 decimals; the fraction was computed before rounding.
        # (ms values this small are mostly rounding: allow 0.0005 ms either way)
        slack = 1e-3 + 0.0006 * (1 + r["floor_ms"] / r["ms"]) / r["ms"]
        assert r["floor_fraction"] == pytest.approx(r["floor_ms"] / r["ms"], rel=0.1, abs=slack)
    cliprt_fp32 = next(r for r in rows if r["method"] == "cliprt" and r["dtype"] == "fp32")
    assert cliprt_fp32["bytes"] == 300 * 16 * 4
    assert {r["floor_method"] for r in rows} <= {"stream_read", "numpy xor.reduce", "torch.sum"}


def test_floor_is_the_best_of_every_read_method() -> None:
    x = np.random.default_rng(0).standard_normal((2000, 64), dtype=np.float32)
    ms, best, each = topk_bench._floor_ms(x, threads=2, repeats=3)
    assert {"stream_read", "numpy xor.reduce"} <= set(each)
    assert ms == min(each.values()) and each[best] == ms


def test_torch_is_a_baseline_where_installed() -> None:
    pytest.importorskip("torch", reason="torch is the baseline only where installed")
    rows = topk_bench.run([300], dim=16, k=5, batches=[1, 3], threads=2, repeats=1)
    torch_rows = [r for r in rows if r["method"] == "torch matmul+topk"]
    assert len(torch_rows) == 2
    assert all("vs_torch" in r for r in rows)


def test_main_writes_markdown_and_json(tmp_path: Path) -> None:
    out = tmp_path / "topk.md"
    argv = ["--n", "200", "--dim", "8", "--batches", "1", "--repeats", "1", "--out", str(out)]
    assert topk_bench.main(argv) == 0
    text = out.read_text()
    assert "## N = 200, D = 8, k = 10, 2 threads" in text
    assert "cliprt ISA:" in text and "versions:" in text
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["environment"]["threads"] == 2 and data["results"]
