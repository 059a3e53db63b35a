"""`cliprt bench` end to end on the tiny model: every figure lands in JSON, Markdown and
PNG; --no-reference never imports torch. Run as the user runs it, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Every test here runs the whole bench (a reference, cold starts, memory probes).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("bench_extra")]

FAST = ["--repeats", "2", "--warmup", "1", "--threads", "1", "--quiet"]


def _bench(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cliprt.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def full_run(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, bench_extra: None
) -> Path:
    out = tmp_path_factory.mktemp("bench-out")
    proc = _bench(
        [str(tiny_model_dir), "--batch", "1,2", "--cold-repeats", "1", "--out", str(out), *FAST]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "speedup" in proc.stdout  # the console table
    return out


def test_writes_json_markdown_png(full_run: Path) -> None:
    assert (full_run / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (full_run / "bench.md").read_text()
    for section in (
        "## Towers: cliprt vs the PyTorch reference",
        "## Where the time goes",
        "## Parity",
        "## Size on disk, peak memory, cold start",
        "## Every row",
        "- machine: ",
        "- versions: cliprt",
    ):
        assert section in md


def test_json_environment_header(full_run: Path) -> None:
    env = json.loads((full_run / "bench.json").read_text())["env"]
    assert env["cpu"]["model"] and env["cpu"]["logical_cores"] >= 1
    assert isinstance(env["cpu"]["isa"], list)
    assert env["threads"] == 1
    for pkg in ("cliprt", "onnxruntime", "torch", "transformers", "numpy"):
        assert env["versions"][pkg], pkg
    assert env["date_utc"] and "gpus" in env and env["load_average_start"] is not None


def test_json_rows_cover_every_stage(full_run: Path) -> None:
    result = json.loads((full_run / "bench.json").read_text())
    rows = {(r["stage"], r["tower"], r["precision"], r["batch"]): r for r in result["rows"]}
    expected = set()
    for b in (1, 2):
        expected |= {("preprocess", "image", None, b), ("tokenize", "text", None, b)}
        for tower in ("image", "text"):
            for p in ("fp32", "int8"):
                expected |= {("tower", tower, p, b), ("e2e", tower, p, b)}
    assert set(rows) == expected
    for key, r in rows.items():
        assert r["device"] == "cpu"
        for side in ("engine", "reference"):
            s = r[side]
            assert len(s["times_ms"]) == s["repeats"] >= 2, key  # cheap rows get more
            assert 0 < s["min_ms"] <= s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"] <= s["max_ms"]
            assert s["throughput_per_s"] > 0 and s["items"] == key[3]
        assert r["ratio_p50"] == pytest.approx(r["engine"]["p50_ms"] / r["reference"]["p50_ms"])
        assert r["speedup"] == pytest.approx(1 / r["ratio_p50"])


def test_json_parity_sizes_memory(full_run: Path) -> None:
    result = json.loads((full_run / "bench.json").read_text())
    assert result["token_ids_equal"] is True
    parity = {(p["tower"], p["precision"], p["kind"]): p for p in result["parity"]}
    assert len(parity) == 8
    for (_, precision, _), p in parity.items():
        assert p["n"] == 2 and p["max_abs_diff"] >= 0
        assert p["min_cosine"] > (0.9999 if precision == "fp32" else 0.99)
    model = result["model"]
    assert model["engine_total_bytes"]["fp32"] > 0 and model["reference_checkpoint_bytes"] > 0
    probes = {(m["side"], m["precision"]): m for m in result["memory"]}
    assert set(probes) == {("engine", "fp32"), ("engine", "int8"), ("reference", "fp32")}
    for (side, _), m in probes.items():
        assert m["peak_rss_bytes"] > 10 * 2**20
        assert 0 < m["import_ms"] < m["cold_start_image_ms"] <= m["cold_start_text_ms"]
        assert m["torch_imported"] is (side == "reference")
    # The engine alone needs less memory than torch + transformers alone.
    assert (
        probes[("engine", "fp32")]["peak_rss_bytes"]
        < probes[("reference", "fp32")]["peak_rss_bytes"]
    )
    assert any("cuda" in s["what"].lower() or "gpu" in s["what"].lower() for s in result["skipped"])


def test_no_reference_never_imports_torch(tiny_model_dir: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from cliprt.bench.cli import main\n"
        f"rc = main([{str(tiny_model_dir)!r}, '--no-reference', '--batch', '1', "
        f"'--cold-repeats', '1', '--out', {str(tmp_path)!r}, "
        "'--repeats', '2', '--warmup', '0', '--threads', '1', '--quiet'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'optimum') if m in sys.modules]\n"
        "print('HEAVY', ' '.join(heavy), 'RC', rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "HEAVY  RC 0", last
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["torch_imported"] is False
    assert all(r["reference"] is None and r["speedup"] is None for r in result["rows"])
    assert result["parity"] == []
    assert [m["side"] for m in result["memory"]] == ["engine", "engine"]
    assert not any(m["torch_imported"] for m in result["memory"])


def test_baselines_timed_in_the_same_run(full_run: Path) -> None:
    """Plain onnxruntime and PyTorch (sdpa; bf16 weights where the CPU has bf16) are timed
    in the same interleaved calls as cliprt, per tower and batch."""
    from cliprt.bench.baselines import cpu_bf16

    result = json.loads((full_run / "bench.json").read_text())
    got = {(b["baseline"], b["tower"], b["batch"]) for b in result["baselines"]}
    names = {"onnxruntime", "torch-fp32"} | ({"torch-bf16"} if cpu_bf16() else set())
    assert got == {(n, t, b) for n in names for t in ("image", "text") for b in (1, 2)}
    for b in result["baselines"]:
        assert b["timing"]["p50_ms"] > 0
        assert set(b["speedup"]) == set(result["config"]["precisions"])
    md = (full_run / "bench.md").read_text()
    assert "## Towers: cliprt vs what a user would run instead" in md
    if not cpu_bf16():
        assert any(s["what"] == "baseline torch-bf16" for s in result["skipped"])
