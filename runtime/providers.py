"""Which device and precision a model runs on, and the onnxruntime options for each.

Device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when onnxruntime's
CUDA execution provider is installed, else CPU). Asking for CUDA where it is missing is
a ProviderError, never a silent CPU fallback.

Precision: ``"fp32"``, ``"fp16"``, ``"int8"`` or ``"auto"`` (CUDA -> fp16, CPU -> int8,
each when the model folder has it, else fp32). The CUDA execution provider has no int8
kernels, so int8 on CUDA is refused; fp16 runs on the CPU but is slower there than fp32.

GPU install: the ``onnxruntime`` and ``onnxruntime-gpu`` wheels install the same
``onnxruntime`` module, so the CPU wheel has to go first::

    pip uninstall -y onnxruntime
    pip install "cliprt[gpu]"        # or: pip install onnxruntime-gpu

onnxruntime-gpu needs a matching CUDA and cuDNN (see onnxruntime's CUDA EP
requirements table); ``python -c "import onnxruntime as o;
print(o.get_available_providers())"`` must list CUDAExecutionProvider.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import onnxruntime as ort

from cliprt.errors import InputError, ModelFolderError, ProviderError
from cliprt.manifest import PRECISIONS, TOWERS, Manifest
from cliprt.runtime.threads import check_threads

logger = logging.getLogger("cliprt.runtime")

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"

GPU_INSTALL_HINT = (
    "install the CUDA build of onnxruntime: `pip uninstall -y onnxruntime && pip install "
    'onnxruntime-gpu` (or `pip install "cliprt[gpu]"` after the uninstall), with a CUDA and '
    "cuDNN matching it; then onnxruntime.get_available_providers() lists CUDAExecutionProvider"
)

_DEVICE_RE = re.compile(r"^(cpu|cuda|auto)(?::(\d+))?$")


@dataclass(frozen=True)
class Device:
    """A resolved device: kind "cpu" or "cuda", and the CUDA device id (0 on CPU)."""

    kind: str
    device_id: int = 0

    def __str__(self) -> str:
        return self.kind if self.kind == "cpu" else f"cuda:{self.device_id}"


def available_providers() -> list[str]:
    """onnxruntime's execution providers installed here (not proof a GPU is present)."""
    return list(ort.get_available_providers())


def cuda_available() -> bool:
    """Whether onnxruntime's CUDA execution provider is installed."""
    return CUDA_EP in available_providers()


def resolve_device(device: str | int | None) -> Device:
    """Parses and checks a device request.

    Args:
        device: "cpu", "cuda", "cuda:N", "auto" (or None), or an int N for "cuda:N".

    Raises:
        InputError: an unknown device string.
        ProviderError: CUDA asked for where its execution provider is not installed.
    """
    if device is None:
        device = "auto"
    if isinstance(device, int) and not isinstance(device, bool):
        device = f"cuda:{device}"
    if not isinstance(device, str):
        raise InputError(
            f"device must be a string like 'cpu', 'cuda', 'cuda:0' or 'auto', got {device!r}"
        )
    m = _DEVICE_RE.match(device.strip().lower())
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise InputError(
            f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' (N >= 0) or 'auto'"
        )
    kind, index = m.group(1), int(m.group(2) or 0)
    if kind == "auto":
        kind = "cuda" if cuda_available() else "cpu"
        logger.info("device='auto' -> %s (providers here: %s)", kind, available_providers())
    if kind == "cuda" and not cuda_available():
        raise ProviderError(
            f"device {device!r} needs onnxruntime's CUDAExecutionProvider, but this onnxruntime "
            f"{ort.__version__} offers only {available_providers()}: {GPU_INSTALL_HINT}"
        )
    return Device(kind, index)


def resolve_precision(precision: str, device: Device, manifest: Manifest, folder: str) -> str:
    """The precision to load for both towers.

    Raises:
        InputError: an unknown precision.
        ProviderError: int8 on CUDA (the CUDA execution provider has no int8 kernels).
        ModelFolderError: the folder lacks the precision asked for.
    """
    if precision not in (*PRECISIONS, "auto"):
        raise InputError(
            f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)} or 'auto'"
        )
    present = [p for p in PRECISIONS if all(p in manifest.towers.get(t, {}) for t in TOWERS)]
    if not present:
        raise ModelFolderError(
            f"{folder}: the manifest lists no precision present for both towers; re-export the model"
        )
    if precision == "auto":
        preferred = "fp16" if device.kind == "cuda" else "int8"
        chosen = preferred if preferred in present else "fp32" if "fp32" in present else present[0]
        if chosen == "int8" and device.kind == "cuda":
            raise ProviderError(
                f"{folder} has only int8 towers, which the CUDA execution provider cannot run; re-export with fp16 or fp32"
            )
        return chosen
    if precision == "int8" and device.kind == "cuda":
        raise ProviderError(
            "int8 on CUDA: onnxruntime's CUDA execution provider has no int8 kernels for these "
            "(dynamically quantized) towers; use precision='fp16' (the CUDA default) or 'fp32', "
            "or device='cpu' for int8"
        )
    if precision not in present:
        raise ModelFolderError(
            f"{folder} has no {precision} towers (it has: {', '.join(present)}); pick one of "
            f"those or re-export with `cliprt export ... --precisions {precision}`"
        )
    if precision == "fp16" and device.kind == "cpu":
        logger.warning(
            "fp16 on the CPU execution provider is slower than fp32; fp16 is meant for CUDA"
        )
    return precision


def default_threads() -> int:
    """Intra-op threads by default: the CPUs this process may use (at most 16)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


def session_options(*, threads: int | None = None, spinning: bool = True) -> ort.SessionOptions:
    """Explicit SessionOptions, never onnxruntime's defaults.

    Args:
        threads: intra-op threads (default: default_threads()). Inter-op is 1 and the
            execution sequential: a CLIP tower is a chain, not a graph of branches.
        spinning: let idle intra-op threads spin between the ops of a run (lower
            latency: no wake-up per parallel section) and stop at the end of each run
            (``session.force_spinning_stop``), so nothing spins between runs, when
            the process decodes images, tokenizes or serves HTTP. False: idle
            threads always sleep (a box shared with other work).
    """
    threads = check_threads(threads, none="default_threads()")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    # Spinning on after a run buys nothing and burns the cores the Python work between
    # runs needs (tokenizing, decoding, the event loop): on the 2-core box it cost up to
    # 14% more CPU per lone call for the same latency, while spinning during the run
    # gives a short text 4.5 ms instead of 6.4 ms without spinning
    # (benchmarks/spinning_probe.py, results/spinning.md).
    so.add_session_config_entry("session.force_spinning_stop", "1" if spinning else "0")
    so.log_severity_level = 3  # errors only: ORT's warnings about node placement are noise here
    return so


@dataclass(frozen=True)
class CudaOptions:
    """CUDA execution provider settings (see onnxruntime's CUDA EP documentation).

    Attributes:
        gpu_mem_limit: bytes the EP's arena may hold (None: no limit).
        arena_extend_strategy: "kNextPowerOfTwo" or "kSameAsRequested" (less waste).
        cudnn_conv_algo_search: "HEURISTIC" (fast start) or "EXHAUSTIVE"/"DEFAULT".
        use_tf32: off by default so fp32 matches the CPU to ~1e-5; on trades that for speed.
        cuda_graph_batch: capture a CUDA graph of the vision tower at this fixed batch
            size (batches are zero-padded to it); None disables graphs. The text tower
            never uses graphs: its sequence length varies with the prompts.
    """

    gpu_mem_limit: int | None = None
    arena_extend_strategy: str = "kSameAsRequested"
    cudnn_conv_algo_search: str = "HEURISTIC"
    use_tf32: bool = False
    cuda_graph_batch: int | None = None


def cuda_provider_options(
    device_id: int, options: CudaOptions, *, cuda_graph: bool
) -> dict[str, Any]:
    """The CUDAExecutionProvider option dict for one session."""
    opts: dict[str, Any] = {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": options.cudnn_conv_algo_search,
        "do_copy_in_default_stream": "1",
        "arena_extend_strategy": options.arena_extend_strategy,
        "use_tf32": "1" if options.use_tf32 else "0",
    }
    if options.gpu_mem_limit is not None:
        opts["gpu_mem_limit"] = str(int(options.gpu_mem_limit))
    if cuda_graph:
        opts["enable_cuda_graph"] = "1"
    return opts
