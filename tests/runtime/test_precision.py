"""precision="auto" per machine, bf16 backends, and the OpenVINO tower session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cliprt
from cliprt.errors import InputError, ProviderError
from cliprt.manifest import read_manifest
from cliprt.runtime.cpu import CpuFeatures, cpu_features
from cliprt.runtime.cpu_choice import ARM64_BF16_FASTMATH, X64_QUANT_PRECISION
from cliprt.runtime.openvino_session import openvino_available, openvino_config
from cliprt.runtime.precision import OPENVINO, choose_precision
from cliprt.runtime.providers import Device

CPU = Device("cpu")
HASWELL = CpuFeatures("x86_64", frozenset({"avx2", "fma"}), "test")
ICELAKE = CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"}), "test")
ZEN4 = ICELAKE.__class__("x86_64", ICELAKE.flags | {"avx512_bf16"}, "test")
SPR = CpuFeatures("x86_64", ZEN4.flags | {"amx_bf16", "amx_tile", "amx_int8"}, "test")
GRAVITON3 = CpuFeatures("aarch64", frozenset({"asimd", "bf16", "i8mm"}), "test")


def _choose(manifest, cpu: CpuFeatures, openvino: bool, precision: str = "auto"):
    return choose_precision(precision, CPU, manifest, "f", cpu=cpu, openvino=openvino)


def test_auto_per_machine(tiny_model_dir: Path) -> None:
    m = read_manifest(tiny_model_dir)
    full_range = not m.export["int8"].get("reduce_range", True)
    hsw = _choose(m, HASWELL, openvino=True)
    assert (hsw.precision, hsw.backend, hsw.hint) == ("int8", "onnxruntime", None)
    assert hsw.session_config == ({X64_QUANT_PRECISION: "1"} if full_range else {})
    icl = _choose(m, ICELAKE, openvino=True)
    assert (icl.precision, icl.session_config, icl.hint) == ("int8", {}, None)
    assert "VNNI" in icl.reason
    # AVX512-BF16 without AMX (Zen 4): int8 measured faster than OpenVINO bf16.
    for openvino in (True, False):
        zen4 = _choose(m, ZEN4, openvino=openvino)
        assert (zen4.precision, zen4.backend, zen4.hint) == ("int8", "onnxruntime", None)
    with_ov = _choose(m, SPR, openvino=True)
    assert (with_ov.precision, with_ov.file, with_ov.backend) == ("bf16", "fp32", OPENVINO)
    assert "AMX" in with_ov.reason
    without = _choose(m, SPR, openvino=False)
    assert without.precision == "int8" and "pip install" in (without.hint or "")
    arm = _choose(m, GRAVITON3, openvino=False)
    assert (arm.precision, arm.session_config, arm.hint) == ("int8", {}, None)


def test_bf16_asked_for(tiny_model_dir: Path) -> None:
    m = read_manifest(tiny_model_dir)
    arm = _choose(m, GRAVITON3, openvino=False, precision="bf16")
    assert (arm.precision, arm.file, arm.backend) == ("bf16", "fp32", "onnxruntime")
    assert arm.session_config == {ARM64_BF16_FASTMATH: "1"}
    assert _choose(m, SPR, openvino=True, precision="bf16").backend == OPENVINO
    with pytest.raises(ProviderError, match="no bf16 instructions"):
        _choose(m, ICELAKE, openvino=True, precision="bf16")
    with pytest.raises(ProviderError, match="pip install"):
        _choose(m, ZEN4, openvino=False, precision="bf16")
    with pytest.raises(ProviderError, match="on CUDA use 'fp16'"):
        choose_precision("bf16", Device("cuda"), m, "f", cpu=ZEN4, openvino=True)
    with pytest.raises(InputError, match="unknown precision 'int4'"):
        _choose(m, ZEN4, openvino=True, precision="int4")


def test_openvino_config_is_explicit() -> None:
    cfg = openvino_config("bf16", 3)
    assert cfg == {
        "INFERENCE_PRECISION_HINT": "bf16",
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": 3,
    }
    with pytest.raises(ValueError, match="bf16 or fp32"):
        openvino_config("int8", 1)


def test_bf16_without_openvino_says_how_to_install(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if openvino_available():
        pytest.skip("openvino is installed here")
    monkeypatch.setenv("CLIPRT_CPU_FLAGS", "avx2 avx512f avx512bw avx512_vnni avx512_bf16")
    if not cpu_features().x86:
        pytest.skip("x86 only")
    with pytest.raises(ProviderError, match="cliprt\\[openvino\\]"):
        cliprt.load(tiny_model_dir, precision="bf16", device="cpu")


def test_openvino_bf16_tracks_fp32_and_is_batch_invariant(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino", reason="the OpenVINO backend needs the openvino extra")
    cpu = cpu_features()
    if not (cpu.x86 and (cpu.amx or cpu.avx512_bf16)):
        # Forcing the flags exercises the same code path; OpenVINO then runs f32 kernels.
        monkeypatch.setenv("CLIPRT_CPU_FLAGS", "avx2 avx512f avx512bw avx512_vnni avx512_bf16")
    texts = ["a photo of a cat", "a red circle", "two dogs on the grass", "x"]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(4)]
    with cliprt.load(tiny_model_dir, precision="fp32", device="cpu", threads=1) as m32:
        ref_t, ref_i = m32.encode_texts(texts), m32.encode_images(images)
    with cliprt.load(tiny_model_dir, precision="bf16", device="cpu", threads=1) as m:
        assert (m.precision, m.backend) == ("bf16", OPENVINO)
        assert "OpenVINO" in m.providers["vision"][0] and "OpenVINO" in m.precision_reason
        t, i = m.encode_texts(texts), m.encode_images(images)
        assert (t * ref_t).sum(1).min() >= 0.999 and (i * ref_i).sum(1).min() >= 0.999
        # An item's embedding does not depend on its batch mates.
        alone = m.encode_images(images[:1])
        np.testing.assert_array_equal(alone[0], i[0])
        monkeypatch.setenv("CLIPRT_CPU_FLAGS", "avx2 avx512f avx512_vnni amx_bf16 amx_tile")
        with cliprt.load(tiny_model_dir, device="cpu", threads=1) as auto:
            assert auto.precision == "bf16" and auto.precision_hint is None
