"""The int8 variant (for CPU): how it is made, as a chain of passes over .onnx files.

Formulations (see benchmarks/results/int8-formulations.md for the measurements):

- "static" (default): static QOperator quantization of every weight MatMul (Q/K/V,
  attention output, MLP, projection) of the graph BEFORE fusion, U8 activations with
  scales calibrated at export on photo-like images and CLIP-BPE captions
  (calibration.py), S8 per-channel weights. A fixed activation scale makes an item's
  embedding independent of its batch mates (the micro-batching server relies on it).
- "dynamic": onnxruntime's quantize_dynamic of the fused graph's MatMuls: one activation
  scale per tensor per run, so an embedding moves with its batch mates.

``quantize_int8`` runs the formulation's pass; a further pass (e.g. int8 of the token
embedding Gather) is a function (src, dst) appended to ``Int8Options.extra_passes`` or
chained after it by the caller: each pass reads one file and writes the next.
"""

from __future__ import annotations

import logging
import platform
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cliprt.export.int8_calibration import minmax_ranges, supports_calibration_cache
from cliprt.export.memory import release_memory

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


FORMULATIONS = ("static", "dynamic")

# A pass turns one .onnx file into the next (src, dst).
Int8Pass = Callable[[Path, Path], None]


@dataclass(frozen=True)
class Int8Options:
    """How the int8 variant is made; recorded in the manifest."""

    formulation: str = "static"
    # static: activation type ("u8" or "s8") and which graph is quantized ("raw": before
    # fusion, every weight MatMul; "fused": after fusion, MatMuls outside Attention).
    activations: str = "u8"
    graph: str = "raw"
    per_channel: bool = True
    reduce_range: bool = field(default_factory=default_reduce_range)
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    # Node names kept in fp32, e.g. the final projection MatMul if parity needs it.
    exclude_nodes: tuple[str, ...] = ()
    # Keep each tower's final projection MatMul in fp32 (it decides the embedding
    # directly; its weights are a small share of the model).
    keep_projection: bool = False
    # Passes run after the formulation's, in order (e.g. int8 of the token embedding).
    extra_passes: tuple[Int8Pass, ...] = ()

    def __post_init__(self) -> None:
        if self.formulation not in FORMULATIONS:
            raise ValueError(
                f"int8 formulation {self.formulation!r}: use one of {', '.join(FORMULATIONS)}"
            )
        if self.activations not in ("u8", "s8") or self.graph not in ("raw", "fused"):
            raise ValueError(
                f"int8 activations {self.activations!r} / graph {self.graph!r}: use u8|s8 and "
                "raw|fused"
            )

    @property
    def static(self) -> bool:
        return self.formulation == "static"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["op_types"] = list(self.op_types)
        d["exclude_nodes"] = list(self.exclude_nodes)
        d["extra_passes"] = [getattr(f, "__name__", repr(f)) for f in self.extra_passes]
        d["cpu_vnni"] = cpu_has_vnni()
        d["machine"] = platform.machine()
        if self.static:
            d["description"] = (
                f"static QOperator, {self.activations.upper()} activations (calibrated "
                f"scales), S8 per-channel weights, weight MatMuls of the "
                f"{'graph before fusion' if self.graph == 'raw' else 'fused graph'}"
            )
        else:
            d["description"] = "dynamic, per-tensor activation scale per run, S8 weights"
        # Dynamic: activation scales are computed per tensor per run, so an embedding
        # moves (within the int8 gate) with the rest of its batch and with padding.
        d["batch_dependent"] = not self.static
        return d


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    options: Int8Options,
    *,
    raw: str | Path | None = None,
    calibration: Any = None,
    external_data: bool = False,
) -> Path:
    """Makes the int8 variant `dst` of a tower.

    Args:
        src: the fused fp32 .onnx (the fp32 variant).
        dst: the int8 .onnx to write.
        options: the formulation and its settings.
        raw: the tower's graph before fusion (static formulation with graph "raw").
        calibration: the tower's calibration input array (static formulation), e.g.
            calibration.calibration_arrays(...)["vision"].
        external_data: write the weights to one data file beside `dst` (towers over
            the protobuf limit).
    """
    src, dst = Path(src), Path(dst)
    if options.static and calibration is None:
        raise ValueError("the static int8 formulation needs calibration inputs")
    if options.static and options.graph == "raw" and raw is None:
        raise ValueError("the static int8 formulation of the raw graph needs `raw`")
    base = Path(raw) if raw is not None and options.static and options.graph == "raw" else src
    exclude = list(options.exclude_nodes)
    if options.keep_projection:
        exclude += projection_nodes(base)
    passes: list[Int8Pass] = []
    if options.static:
        passes.append(
            lambda a, b: _quantize_static(a, b, options, exclude, calibration, external_data)
        )
    else:
        passes.append(lambda a, b: _quantize(a, b, options, exclude, external_data))
    passes += list(options.extra_passes)
    # quantize_* log a "consider pre-processing" advice on the root logger for every
    # call; the graph was already prepared, the advice does not apply.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        current = base
        for i, step in enumerate(passes):
            out = dst if i == len(passes) - 1 else dst.with_suffix(f".pass{i}.onnx")
            step(current, out)
            if current not in (base, dst):
                current.unlink(missing_ok=True)
            current = out
    finally:
        root.setLevel(level)
    return dst


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


class _Calibration:
    """onnxruntime's CalibrationDataReader over one input array, 8 rows per batch."""

    def __init__(self, name: str, data: Any) -> None:
        self._batches = [data[i : i + 8] for i in range(0, len(data), 8)]
        self._name = name
        self._next = 0

    @property
    def batches(self) -> list[dict[str, Any]]:
        """Every feed, in order."""
        return [{self._name: b} for b in self._batches]

    def get_next(self) -> dict[str, Any] | None:
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return {self._name: self._batches[self._next - 1]}

    def rewind(self) -> None:
        self._next = 0


def activation_matmuls(path: str | Path) -> list[str]:
    """MatMul nodes whose both inputs are activations (attention scores and context):
    kept in fp32, a fixed scale for them costs parity and they are few FLOPs."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] not in weights]


def _quantize_static(
    src: Path,
    dst: Path,
    options: Int8Options,
    exclude: list[str],
    calibration: Any,
    external_data: bool = False,
) -> None:
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    input_name = model.graph.input[0].name
    del model
    reader = _Calibration(input_name, calibration)
    calibrated: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="cliprt-calibration-") as tmp:
        if external_data and supports_calibration_cache():
            # A tower in external data is calibrated without loading its weights
            # (int8_calibration); onnxruntime's quantizer takes the ranges from its cache.
            from onnxruntime.quantization.calibrate import save_tensors_data

            cache = Path(tmp) / "ranges.json"
            save_tensors_data(minmax_ranges(src, reader.batches, list(options.op_types)), cache)
            release_memory()  # the calibration session's activations, before the weights load
            calibrated = {"calibration_data_reader": None, "calibration_cache_path": str(cache)}
        _run_quantize_static(src, dst, options, exclude, reader, external_data, calibrated)


def _run_quantize_static(
    src: Path,
    dst: Path,
    options: Int8Options,
    exclude: list[str],
    reader: _Calibration,
    external_data: bool,
    calibrated: dict[str, Any],
) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    quantize_static(
        str(src),
        str(dst),
        **({"calibration_data_reader": reader} | calibrated),
        quant_format=QuantFormat.QOperator,
        op_types_to_quantize=list(options.op_types),
        nodes_to_exclude=exclude + activation_matmuls(src),
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        activation_type=QuantType.QUInt8 if options.activations == "u8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        use_external_data_format=external_data,
        extra_options={
            "DefaultTensorType": onnx.TensorProto.FLOAT,
            "ActivationSymmetric": options.activations == "s8",
            "WeightSymmetric": True,
        },
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
