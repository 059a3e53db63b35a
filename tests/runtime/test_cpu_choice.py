"""CPU feature detection and the per-CPU session settings chosen from it."""

from __future__ import annotations

from pathlib import Path

import pytest

import cliprt
from cliprt.manifest import read_manifest
from cliprt.runtime.cpu import FLAGS_ENV, CpuFeatures, cpu_features, detect
from cliprt.runtime.cpu_choice import (
    ARM64_BF16_FASTMATH,
    X64_QUANT_PRECISION,
    arm_bf16_session,
    int8_saturates,
    int8_session,
)

ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
HASWELL = "processor\t: 0\nmodel name\t: Intel Xeon E5-2680 v3\nflags\t\t: fpu sse avx avx2 fma\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512dq\n"
SPR = "processor\t: 0\nflags\t\t: avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve bf16 i8mm\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp\n"


def _cpu(tmp_path: Path, text: str, machine: str = "x86_64") -> CpuFeatures:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return detect(path, machine=machine)


@pytest.fixture(autouse=True)
def _no_forced_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FLAGS_ENV, raising=False)


def test_detect_reads_each_generation(tmp_path: Path) -> None:
    zen4 = _cpu(tmp_path, ZEN4)
    assert (zen4.avx2, zen4.avx512, zen4.vnni, zen4.avx512_bf16, zen4.amx) == (
        True,
        True,
        True,
        True,
        False,
    )
    assert zen4.model == "AMD EPYC" and zen4.bf16
    hsw = _cpu(tmp_path, HASWELL)
    assert hsw.avx2 and not hsw.avx512 and not hsw.vnni and not hsw.bf16
    skx = _cpu(tmp_path, SKYLAKE)
    assert skx.avx512 and not skx.vnni
    spr = _cpu(tmp_path, SPR)
    assert spr.amx and spr.vnni and spr.bf16
    g3 = _cpu(tmp_path, GRAVITON3, machine="aarch64")
    assert g3.arm64 and g3.neon and g3.arm_bf16 and not g3.x86
    g2 = _cpu(tmp_path, GRAVITON2, machine="arm64")
    assert g2.arch == "aarch64" and g2.neon and not g2.arm_bf16
    assert "VNNI" in zen4.summary() and "AMX" in spr.summary() and "BF16" in g3.summary()


def test_unreadable_cpuinfo_is_unknown_not_a_guess(tmp_path: Path) -> None:
    cpu = detect(tmp_path / "missing", machine="riscv64")
    assert not cpu.known and cpu.source == "unknown" and "unknown" in cpu.summary()


def test_forced_flags_replace_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FLAGS_ENV, "avx2,fma")
    cpu = cpu_features()
    assert cpu.source == FLAGS_ENV and cpu.avx2 and not cpu.vnni


def test_this_machine_is_detected() -> None:
    cpu = cpu_features()
    if Path("/proc/cpuinfo").is_file():
        assert cpu.known and cpu.source == "/proc/cpuinfo"
    if cpu.x86:
        # Every x86-64 CPU onnxruntime's wheels run on has AVX2 or is at least known.
        assert cpu.flags


def test_int8_widening_only_where_the_cpu_saturates(tmp_path: Path) -> None:
    full_range = {"reduce_range": False}
    zen4, hsw, skx = _cpu(tmp_path, ZEN4), _cpu(tmp_path, HASWELL), _cpu(tmp_path, SKYLAKE)
    g3 = _cpu(tmp_path, GRAVITON3, machine="aarch64")
    assert int8_session(zen4, full_range).config == {}
    assert int8_session(g3, full_range).config == {}
    for cpu in (hsw, skx):
        assert int8_saturates(cpu)
        choice = int8_session(cpu, full_range)
        assert choice.config == {X64_QUANT_PRECISION: "1"} and "no VNNI" in choice.reason
        # 7-bit weights cannot saturate: no widening even without VNNI.
        assert int8_session(cpu, {"reduce_range": True}).config == {}
    unknown_x86 = detect(tmp_path / "missing", machine="x86_64")
    if not unknown_x86.known:  # no cliprt._topk cpuid either
        assert int8_session(unknown_x86, full_range).config == {X64_QUANT_PRECISION: "1"}


def test_arm_bf16_fastmath_option(tmp_path: Path) -> None:
    g3 = _cpu(tmp_path, GRAVITON3, machine="aarch64")
    assert arm_bf16_session(g3).config == {ARM64_BF16_FASTMATH: "1"}
    assert "no bf16" in arm_bf16_session(_cpu(tmp_path, GRAVITON2, machine="aarch64")).reason
    with pytest.raises(ValueError, match="ARM64 only"):
        arm_bf16_session(_cpu(tmp_path, ZEN4))


def _x64_entry(model: cliprt.ClipModel) -> str | None:
    opts = model.vision.session.get_session_options()
    try:
        return opts.get_session_config_entry(X64_QUANT_PRECISION)
    except RuntimeError:
        return None


@pytest.mark.parametrize("flags", ["avx2 fma", "avx2 avx512f avx512bw avx512_vnni"])
def test_load_sets_widening_from_the_cpu_it_runs_on(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, flags: str
) -> None:
    """The same int8 folder gets session.x64quantprecision on a CPU without VNNI and
    not on one with it, whatever machine exported it."""
    monkeypatch.setenv(FLAGS_ENV, flags)
    reduce_range = read_manifest(tiny_model_dir).export["int8"].get("reduce_range", True)
    with cliprt.load(tiny_model_dir, precision="int8", device="cpu", threads=1) as model:
        entry = _x64_entry(model)
        # The real session runs either way.
        assert model.encode_texts(["a photo of a cat"]).shape == (1, model.embed_dim)
    widen = "vnni" not in flags and not reduce_range and cpu_features().x86
    assert entry == ("1" if widen else None)
