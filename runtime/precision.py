"""Which precision and backend a model runs on, per machine, and why.

Precisions a user may ask for: "fp32", "fp16", "int8" (files of the folder), "bf16" (the
fp32 file computed in bf16: OpenVINO on x86 CPUs with AMX or AVX512-BF16, onnxruntime's
fastmath GEMM on ARM64), and "auto", which picks from what the machine has:

====================================  =============================================
machine                               precision="auto"
====================================  =============================================
CUDA                                  fp16 (fp32 if the folder has none)
x86 with AMX, openvino installed      bf16 via OpenVINO (AMX bf16 tiles; on a Xeon
                                      PyTorch's bf16 beat onnxruntime int8, issue #11)
x86 with VNNI (AVX512 or AVX-VNNI),   int8 (full-speed int8 kernels; on an AVX512-BF16
AVX512-BF16 without AMX included      Zen 4, int8 beat OpenVINO bf16, see
                                      benchmarks/results/bf16-backends.md)
x86 AVX2 without VNNI                 int8 (weights widened where they could saturate)
ARM64                                 int8 (NEON)
folder without int8                   fp32
====================================  =============================================

When a faster path exists for the CPU but is not installed (OpenVINO on an AMX CPU), the
choice says so in ``hint``; ``cliprt.load`` logs it and keeps it on the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cliprt.errors import InputError, ProviderError
from cliprt.manifest import PRECISIONS, TOWERS, Manifest
from cliprt.runtime.cpu import CpuFeatures
from cliprt.runtime.cpu_choice import arm_bf16_session, int8_session
from cliprt.runtime.openvino_session import OPENVINO_INSTALL_HINT
from cliprt.runtime.providers import Device, resolve_precision

RUNTIME_PRECISIONS = (*PRECISIONS, "bf16")
ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"


@dataclass(frozen=True)
class PrecisionChoice:
    """What a model loads and how.

    Attributes:
        precision: what computes: "fp32", "fp16", "int8" or "bf16".
        file: the manifest precision whose files are loaded ("fp32" for bf16).
        backend: "onnxruntime" or "openvino".
        session_config: extra onnxruntime session config entries for this CPU.
        reason: why, in one sentence (``ClipModel.precision_reason``).
        hint: a faster path this machine could use but lacks, with the install
            command; None when there is none.
    """

    precision: str
    file: str
    backend: str = ONNXRUNTIME
    session_config: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    hint: str | None = None


def _present(manifest: Manifest) -> list[str]:
    return [p for p in PRECISIONS if all(p in manifest.towers.get(t, {}) for t in TOWERS)]


def _bf16(cpu: CpuFeatures, openvino: bool, folder: str) -> PrecisionChoice:
    if cpu.x86:
        if not (cpu.amx or cpu.avx512_bf16):
            raise ProviderError(
                f"precision='bf16': this CPU ({cpu.summary()}) has no bf16 instructions (AMX or "
                "AVX512-BF16), so bf16 would be emulated and slower than fp32; use 'int8' or 'fp32'"
            )
        if not openvino:
            raise ProviderError(
                "precision='bf16' on x86 runs through OpenVINO, which is not installed: "
                f"{OPENVINO_INSTALL_HINT}; or use 'int8' / 'fp32'"
            )
        kind = "AMX" if cpu.amx else "AVX512-BF16"
        return PrecisionChoice(
            "bf16", "fp32", OPENVINO, {}, f"bf16 on {kind} through OpenVINO (fp32 file)"
        )
    if cpu.arm64:
        choice = arm_bf16_session(cpu)
        return PrecisionChoice("bf16", "fp32", ONNXRUNTIME, dict(choice.config), choice.reason)
    raise ProviderError(
        f"precision='bf16' needs an x86 CPU with AMX/AVX512-BF16 (and OpenVINO) or an ARM64 "
        f"CPU; this one is {cpu.summary()}: use 'int8' or 'fp32'"
    )


def choose_precision(
    precision: str,
    device: Device,
    manifest: Manifest,
    folder: str,
    *,
    cpu: CpuFeatures,
    openvino: bool,
) -> PrecisionChoice:
    """Resolves `precision` (a RUNTIME_PRECISIONS name or "auto") for this machine.

    Args:
        precision: what the user asked for.
        device: the resolved device.
        manifest, folder: the model folder (which files it has).
        cpu: this machine's CPU features.
        openvino: whether the openvino package is installed.

    Raises:
        InputError: an unknown precision.
        ProviderError: a precision this device or CPU cannot run (bf16 without bf16
            instructions or without OpenVINO on x86, int8 or bf16 on CUDA).
        ModelFolderError: the folder lacks the file the precision needs.
    """
    if precision not in (*RUNTIME_PRECISIONS, "auto"):
        raise InputError(
            f"unknown precision {precision!r}: use one of {', '.join(RUNTIME_PRECISIONS)} or 'auto'"
        )
    if device.kind == "cuda":
        if precision == "bf16":
            raise ProviderError(
                "precision='bf16' is a CPU path (OpenVINO / ARM64 fastmath); on CUDA use 'fp16'"
            )
        chosen = resolve_precision(precision, device, manifest, folder)
        return PrecisionChoice(chosen, chosen, reason=f"CUDA: {chosen} ({precision} asked)")
    if precision == "bf16":
        resolve_precision("fp32", device, manifest, folder)  # the file must be there
        return _bf16(cpu, openvino, folder)
    present = _present(manifest)
    # bf16 by default only with AMX: with AVX512-BF16 alone (Zen 4) the static int8
    # towers measured faster than OpenVINO bf16 (benchmarks/results/bf16-backends.md).
    if precision == "auto" and "fp32" in present and cpu.x86 and cpu.amx:
        if openvino:
            choice = _bf16(cpu, openvino, folder)
            return PrecisionChoice(
                choice.precision,
                choice.file,
                choice.backend,
                choice.session_config,
                f"auto: {choice.reason} (AMX: bf16 tiles outrun the int8 kernels)",
            )
        hint = (
            "this CPU has AMX: bf16 through OpenVINO (precision='bf16') should outrun "
            f"onnxruntime's int8 here; {OPENVINO_INSTALL_HINT}"
        )
    else:
        hint = None
    chosen = resolve_precision(precision, device, manifest, folder)
    if chosen == "int8":
        int8 = int8_session(cpu, manifest.export.get("int8"))
        why = f"{'auto: ' if precision == 'auto' else ''}int8 on {cpu.summary()}; {int8.reason}"
        return PrecisionChoice("int8", "int8", ONNXRUNTIME, dict(int8.config), why, hint)
    why = (
        f"{chosen} as asked"
        if precision != "auto"
        else f"auto: {chosen} (the folder has {present})"
    )
    return PrecisionChoice(chosen, chosen, ONNXRUNTIME, {}, why, hint)
