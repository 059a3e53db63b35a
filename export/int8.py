"""The int8 variant (for CPU): dynamic quantization, per output channel, MatMul only."""

from __future__ import annotations

import logging
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# MatMul only: ConvInteger for the patch embedding is slower than the fp32 Conv on
# onnxruntime's CPU EP, and quantizing the token-embedding Gather saves memory, not time.
DEFAULT_OP_TYPES = ("MatMul",)


def cpu_has_vnni(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """True if the CPU has VNNI (avx512_vnni or avx_vnni), False if not, None when
    /proc/cpuinfo cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_vnni", "avx_vnni"})
    return None


def default_reduce_range() -> bool:
    """reduce_range (7-bit weights) on x86 without VNNI: its u8*s8 instructions
    (vpmaddubsw) saturate int16 sums with full-range weights. Elsewhere full range."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return False
    return cpu_has_vnni() is not True


@dataclass(frozen=True)
class Int8Options:
    """How the int8 variant is made; recorded in the manifest."""

    per_channel: bool = True
    reduce_range: bool = field(default_factory=default_reduce_range)
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    # Node names kept in fp32, e.g. the final projection MatMul if parity needs it.
    exclude_nodes: tuple[str, ...] = ()
    # Keep each tower's final projection MatMul in fp32 (it decides the embedding
    # directly; its weights are a small share of the model).
    keep_projection: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["op_types"] = list(self.op_types)
        d["exclude_nodes"] = list(self.exclude_nodes)
        d["cpu_vnni"] = cpu_has_vnni()
        d["machine"] = platform.machine()
        # Activation scales are computed per tensor per run: an embedding moves slightly
        # (within the int8 gate) with the rest of its batch and with padding.
        d["batch_dependent"] = True
        return d


def quantize_int8(
    src: str | Path, dst: str | Path, options: Int8Options, *, external_data: bool = False
) -> Path:
    """Dynamically quantizes `src` (fp32 .onnx) to `dst` with QInt8 weights; with
    external_data the weights go to one data file beside `dst`."""
    exclude = list(options.exclude_nodes)
    if options.keep_projection:
        exclude += projection_nodes(src)
    # quantize_dynamic logs a "consider pre-processing" advice on the root logger for
    # every call; the graph was already optimized, the advice does not apply.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        _quantize(src, dst, options, exclude, external_data)
    finally:
        root.setLevel(level)
    return Path(dst)


def _quantize(
    src: str | Path,
    dst: str | Path,
    options: Int8Options,
    exclude: list[str],
    external_data: bool = False,
) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=str(src),
        model_output=str(dst),
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(options.op_types),
        nodes_to_exclude=exclude,
        use_external_data_format=external_data,
        # Shape inference cannot type the outputs of com.microsoft ops (the fused
        # Attention); every float tensor here is fp32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def projection_nodes(
    path: str | Path, names: Sequence[str] = ("image_embeds", "text_embeds")
) -> list[str]:
    """Names of the MatMul nodes that produce a tower's output (the final projection),
    for Int8Options.exclude_nodes."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {o: n for n in graph.node for o in n.output}
    out = []
    for name in names:
        node = producers.get(name)
        if node is not None and node.op_type == "MatMul":
            out.append(node.name)
    return out
