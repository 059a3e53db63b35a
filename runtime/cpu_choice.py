"""Per-CPU session settings: what the CPU at hand needs, decided at load.

int8: x86 CPUs without VNNI multiply u8 x s8 with vpmaddubsw, whose int16 pair sums
saturate when the weights use the full 8-bit range (an int8 folder exported without
reduce_range). onnxruntime's ``session.x64quantprecision=1`` switches such machines to
kernels that widen to int16 first. On VNNI machines (vpdpbusd sums into int32) that
setting is not needed and costs time (1.65x at image batch 8 on a Xeon, issue #11), and
on ARM it does not apply; so it is set only where the CPU lacks VNNI.

bf16 on ARM64: onnxruntime's ``mlas.enable_gemm_fastmath_arm64_bfloat16=1`` runs fp32
GEMMs with bf16 BFMMLA instructions where the CPU has them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cliprt.runtime.cpu import CpuFeatures

X64_QUANT_PRECISION = "session.x64quantprecision"
ARM64_BF16_FASTMATH = "mlas.enable_gemm_fastmath_arm64_bfloat16"


@dataclass(frozen=True)
class SessionChoice:
    """Session config entries chosen for one precision on one CPU, and why."""

    config: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""


def int8_saturates(features: CpuFeatures) -> bool:
    """Whether full-range int8 weights risk int16 saturation on this CPU (x86 without
    VNNI; an x86 CPU whose features are unknown counts as at risk)."""
    return features.x86 and not features.vnni


def int8_session(features: CpuFeatures, int8_export: Mapping[str, Any] | None) -> SessionChoice:
    """The session settings for an int8 folder on this CPU.

    Args:
        features: the CPU the session runs on.
        int8_export: the manifest's export["int8"] record (reduce_range, formulation).
    """
    reduce_range = bool((int8_export or {}).get("reduce_range", True))
    if not int8_saturates(features):
        why = "VNNI" if features.x86 else features.arch
        return SessionChoice({}, f"int8 kernels run at full precision on {why}: no widening")
    if reduce_range:
        return SessionChoice(
            {}, "7-bit (reduce_range) weights cannot saturate int16 sums: no widening needed"
        )
    what = "features unknown" if not features.known else "no VNNI"
    return SessionChoice(
        {X64_QUANT_PRECISION: "1"},
        f"x86 with {what} and full-range int8 weights: {X64_QUANT_PRECISION}=1 widens the "
        "products so that int16 sums do not saturate",
    )


def arm_bf16_session(features: CpuFeatures) -> SessionChoice:
    """The session settings that run an fp32 graph's GEMMs in bf16 on ARM64.

    Raises:
        ValueError: not an ARM64 CPU (the option exists only in ARM64 builds of
            onnxruntime's MLAS).
    """
    if not features.arm64:
        raise ValueError(f"{ARM64_BF16_FASTMATH} applies to ARM64 only, not {features.arch}")
    note = "" if features.arm_bf16 else " (the CPU lists no bf16 feature: MLAS may ignore it)"
    return SessionChoice(
        {ARM64_BF16_FASTMATH: "1"},
        f"ARM64: onnxruntime's bf16 fastmath GEMM on the fp32 graph{note}",
    )
