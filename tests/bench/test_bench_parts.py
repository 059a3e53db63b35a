"""The harness's small parts: percentiles, exact-length prompts, parity figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cliprt.bench.inputs import make_images, make_texts, token_counter
from cliprt.bench.parity import compare
from cliprt.bench.timing import Timing, measure, measure_interleaved
from cliprt.errors import InputError


def test_timing_percentiles_and_throughput() -> None:
    t = Timing(items=8, times_ms=tuple(float(x) for x in range(1, 101)), warmup=0)
    assert t.p50_ms == pytest.approx(50.5)
    assert t.p90_ms == pytest.approx(90.1)
    assert t.p99_ms == pytest.approx(99.01)
    assert t.throughput == pytest.approx(8 * 1000 / 50.5)
    s = t.summary()
    assert s["repeats"] == 100 and len(s["times_ms"]) == 100 and s["min_ms"] == 1.0


def test_measure_counts_warmup_and_sync() -> None:
    calls: list[str] = []
    t = measure(
        lambda: calls.append("f"), items=1, repeats=3, warmup=2, sync=lambda: calls.append("s")
    )
    assert calls == ["f", "s"] * 5
    assert len(t.times_ms) == 3 and all(x >= 0 for x in t.times_ms)
    with pytest.raises(ValueError):
        measure(lambda: None, items=1, repeats=0, warmup=0)


def test_prompts_have_the_exact_token_count(tiny_model_dir: Path) -> None:
    count = token_counter(tiny_model_dir / "tokenizer.json")
    for seq_len in (3, 7, 16, 77):
        texts = make_texts(5, seq_len, count)
        assert len(set(texts)) == 5 or seq_len == 3
        assert all(count(t) == seq_len for t in texts)
    with pytest.raises(InputError):
        make_texts(1, 2, count)


def test_images_are_deterministic_jpegs(tmp_path: Path) -> None:
    files, images = make_images(3, tmp_path / "a")
    files2, images2 = make_images(3, tmp_path / "b")
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in files2]
    assert len({im.size for im in images}) == 3 and all(im.mode == "RGB" for im in images2)


def test_parity_figures() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 16)).astype(np.float32)
    same = compare(a, a * 3)  # normalisation makes scale irrelevant
    assert same.min_cosine == pytest.approx(1.0) and same.max_abs_diff < 1e-6
    b = a.copy()
    b[2] = -b[2]
    worse = compare(a, b)
    assert worse.min_cosine == pytest.approx(-1.0) and worse.n == 4


def test_interleaved_round_robin_and_min_time() -> None:
    order: list[str] = []
    t = measure_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        items=2,
        repeats=2,
        warmup=1,
    )
    assert order == ["a", "b"] * 3
    assert len(t["a"].times_ms) == len(t["b"].times_ms) == 2
    # Cheap calls: more rounds until min_time_s, capped at max_repeats.
    t = measure_interleaved(
        {"a": lambda: None}, items=1, repeats=2, warmup=0, min_time_s=10, max_repeats=7
    )
    assert len(t["a"].times_ms) == 7


def test_omp_wait_policy_is_scoped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench sets OMP_WAIT_POLICY for its run only; the demo keeps a user's value."""
    import os

    from cliprt.bench.config import omp_wait_policy

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with omp_wait_policy("PASSIVE"):
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with omp_wait_policy("PASSIVE", override=False):
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    with omp_wait_policy("PASSIVE"):
        assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    with omp_wait_policy(None):
        assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
