"""What the CPU this process runs on can do, for choosing kernels and precisions at load.

Read from /proc/cpuinfo on Linux (the kernel's view: it hides what the OS does not
enable, e.g. AMX without the XFEATURE permission); elsewhere the SIMD levels that
cliprt's own C++ kernel detected with cpuid (``cliprt._topk.available_isas``). Never
from torch, and never from the machine that exported the model.

``CLIPRT_CPU_FLAGS`` (comma- or space-separated cpuinfo flag names, read at call time)
replaces the detected flags, for tests and for forcing a choice on odd machines.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
FLAGS_ENV = "CLIPRT_CPU_FLAGS"

_X86 = ("x86_64", "amd64", "i386", "i686")
_ARM64 = ("aarch64", "arm64")


@dataclass(frozen=True)
class CpuFeatures:
    """The features that decide cliprt's CPU choices.

    Attributes:
        arch: "x86_64", "aarch64" or platform.machine() as it is.
        flags: the raw flag names (x86 "flags", ARM "Features"), lower case.
        source: where the flags came from ("/proc/cpuinfo", "cpuid (cliprt._topk)",
            "CLIPRT_CPU_FLAGS", or "unknown").
        model: the CPU's model name where known.
    """

    arch: str
    flags: frozenset[str] = field(default_factory=frozenset)
    source: str = "unknown"
    model: str = ""

    @property
    def x86(self) -> bool:
        return self.arch in _X86

    @property
    def arm64(self) -> bool:
        return self.arch in _ARM64

    @property
    def known(self) -> bool:
        """Whether any flags were found (False: decisions fall back to safe defaults)."""
        return bool(self.flags)

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags

    @property
    def avx512(self) -> bool:
        return {"avx512f", "avx512bw"} <= self.flags

    @property
    def vnni(self) -> bool:
        """int8 dot products without int16 saturation (AVX512-VNNI or AVX-VNNI)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "avx512vnni"})

    @property
    def avx512_bf16(self) -> bool:
        return "avx512_bf16" in self.flags

    @property
    def amx(self) -> bool:
        """AMX tiles with bf16 and int8 (Sapphire Rapids and later)."""
        return {"amx_bf16", "amx_tile"} <= self.flags

    @property
    def neon(self) -> bool:
        return self.arm64  # Advanced SIMD is mandatory on AArch64

    @property
    def arm_bf16(self) -> bool:
        """ARMv8.6 BF16 instructions (BFMMLA), what onnxruntime's fastmath GEMM uses."""
        return self.arm64 and "bf16" in self.flags

    @property
    def bf16(self) -> bool:
        """Native bf16 arithmetic of some kind (AMX, AVX512-BF16 or ARM BF16)."""
        return self.amx or self.avx512_bf16 or self.arm_bf16

    def summary(self) -> str:
        """One phrase naming the features that matter, e.g. "x86_64 AVX-512 VNNI BF16"."""
        names = []
        if self.x86:
            names = [
                n
                for n, ok in (
                    ("AVX2", self.avx2),
                    ("AVX-512", self.avx512),
                    ("VNNI", self.vnni),
                    ("AVX512-BF16", self.avx512_bf16),
                    ("AMX", self.amx),
                )
                if ok
            ]
        elif self.arm64:
            names = ["NEON"] + (["BF16"] if self.arm_bf16 else [])
        known = "" if self.known else " (features unknown)"
        return " ".join([self.arch, *names]) + known


def parse_cpuinfo(text: str, arch: str) -> tuple[frozenset[str], str]:
    """(flags, model name) of the first processor in a /proc/cpuinfo text."""
    flags: frozenset[str] = frozenset()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = frozenset(value.lower().split())
        elif key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
    return flags, model


def _kernel_isas() -> frozenset[str]:
    # cpuid as the C++ kernel saw it; its ISA names map onto cpuinfo flag names.
    try:
        from cliprt import _topk
    except ImportError:
        return frozenset()
    names = {str(n).lower() for n in _topk.available_isas()}
    flags = set()
    for name in names:
        if name.startswith("avx512"):
            flags |= {"avx512f", "avx512bw", "avx2"}
        if name == "avx2":
            flags.add("avx2")
        if "vnni" in name:
            flags.add("avx512_vnni")
        if "bf16" in name:
            flags.add("avx512_bf16")
        if "amx" in name:
            flags |= {"amx_bf16", "amx_tile"}
    return frozenset(flags)


def detect(cpuinfo: str | Path = CPUINFO, machine: str | None = None) -> CpuFeatures:
    """Detects the CPU's features (see the module docstring for the sources).

    Args:
        cpuinfo: a /proc/cpuinfo path (tests pass a file of another machine's).
        machine: platform.machine() override (tests).
    """
    arch = (machine or platform.machine() or "unknown").lower()
    if arch == "amd64":
        arch = "x86_64"
    if arch == "arm64":
        arch = "aarch64"
    forced = os.environ.get(FLAGS_ENV)
    if forced is not None:
        return CpuFeatures(
            arch, frozenset(forced.replace(",", " ").lower().split()), source=FLAGS_ENV
        )
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    flags, model = parse_cpuinfo(text, arch)
    if flags:
        return CpuFeatures(arch, flags, source=str(cpuinfo), model=model)
    flags = _kernel_isas() if arch in _X86 else frozenset()
    if flags:
        return CpuFeatures(arch, flags, source="cpuid (cliprt._topk)")
    return CpuFeatures(arch)


@lru_cache(maxsize=1)
def _cached() -> CpuFeatures:
    return detect()


def cpu_features() -> CpuFeatures:
    """This machine's features, detected once per process (CLIPRT_CPU_FLAGS rechecked)."""
    if FLAGS_ENV in os.environ:
        return detect()
    return _cached()
