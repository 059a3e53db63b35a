"""The int8 variant (for CPU): how it is made, as a chain of passes over .onnx files.

Formulations (see benchmarks/results/int8-formulations.md for the measurements):

- "static" (default): every weight MatMul (Q/K/V, attention output, MLP, projection) of
  the graph BEFORE fusion is int8, and so is the vision patch embedding (a Conv whose
  stride is its kernel, rewritten as the MatMul it is: ``patch_conv_to_matmul``). U8
  activations with scales calibrated at export on photo-like images and CLIP-BPE
  captions (calibration.py), S8 per-channel weights. A fixed activation scale makes an
  item's embedding independent of its batch mates (the micro-batching server relies on
  it). Kernels (``Int8Options.kernels``):
    - "integer" (default): QuantizeLinear with the frozen scale -> MatMulInteger ->
      scale to fp32, which onnxruntime fuses into MatMulIntegerToFloat (fp32 output,
      no requantization of the result); built as onnxruntime's dynamic quantization
      with each DynamicQuantizeLinear frozen to the calibrated range
      (``freeze_activation_scales``).
    - "qoperator" (cliprt 0.2's default): QLinearMatMul with calibrated input AND
      output scales (quantize_static, QOperator format); the output is requantized to
      u8 and dequantized again.
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
KERNELS = ("integer", "qoperator")

# A pass turns one .onnx file into the next (src, dst).
# A graph pass from one file to another; what it returns (e.g. a count) is not used.
Int8Pass = Callable[[Path, Path], object]


@dataclass(frozen=True)
class Int8Options:
    """How the int8 variant is made; recorded in the manifest."""

    formulation: str = "static"
    # static: activation type ("u8" or "s8") and which graph is quantized ("raw": before
    # fusion, every weight MatMul; "fused": after fusion, MatMuls outside Attention).
    activations: str = "u8"
    graph: str = "raw"
    # static: "integer" (frozen-scale MatMulIntegerToFloat) or "qoperator" (QLinearMatMul).
    kernels: str = "integer"
    # static, graph "raw": the vision patch-embedding Conv as an int8 MatMul.
    patch_embedding: bool = True
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
        if self.kernels not in KERNELS:
            raise ValueError(f"int8 kernels {self.kernels!r}: use one of {', '.join(KERNELS)}")

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
            kernels = (
                "MatMulInteger with frozen activation scales"
                if self.kernels == "integer"
                else "static QOperator (QLinearMatMul)"
            )
            patch = " and the patch-embedding Conv" if self.patch_embedding else ""
            d["description"] = (
                f"{kernels}, {self.activations.upper()} activations (calibrated "
                f"scales), S8 per-channel weights, weight MatMuls{patch} of the "
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
    if options.static and options.patch_embedding:
        passes.append(lambda a, b: patch_conv_to_matmul(a, b, external_data=external_data))
    if options.static and options.kernels == "integer":
        passes.append(
            lambda a, b: _quantize_frozen(a, b, options, exclude, calibration, external_data)
        )
    elif options.static:
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
                Path(f"{current}.data").unlink(missing_ok=True)
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


def _save(model: Any, dst: Path, external_data: bool) -> None:
    """Saves `model` to `dst`; with external_data, every weight goes to `dst`.data."""
    import onnx

    if external_data:
        Path(f"{dst}.data").unlink(missing_ok=True)
        onnx.save(
            model,
            str(dst),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=f"{dst.name}.data",
            size_threshold=1024,
        )
    else:
        onnx.save(model, str(dst))


def patch_conv_to_matmul(src: str | Path, dst: str | Path, *, external_data: bool = False) -> int:
    """Rewrites each patch-embedding Conv (kernel == stride, no padding, no dilation,
    one group, static spatial size) as the MatMul it is, so that the int8 pass
    quantizes it like every other weight MatMul.

    [B, C, H, W] -> Reshape [B, C, h, k, w, k] -> Transpose [B, h, w, C, k, k] ->
    Reshape [B, h*w, C*k*k] -> MatMul by W reshaped [O, C*k*k] and transposed (+ bias)
    -> Transpose [B, O, h*w] -> Reshape [B, O, h, w]: the Conv's own output tensor, so
    the rest of the graph is unchanged. onnxruntime has no fast int8 Conv on CPU
    (ConvInteger runs slower than the fp32 Conv), while its int8 MatMul kernels are the
    ones every other layer uses; the vision tower's largest fp32 weight goes (ViT-B/32:
    768x3x32x32, 9.4 MB -> 2.4 MB). Other Convs are left as they are.

    Returns:
        How many Convs were rewritten (dst is written in every case).
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src), load_external_data=False)
    shapes = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    dims: dict[str, list[int | None]] = {}
    for vi in list(shapes.graph.value_info) + list(shapes.graph.input):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    del shapes
    inits = {t.name: t for t in model.graph.initializer}
    nodes, rewritten = [], 0
    for node in model.graph.node:
        plan = _patch_conv_plan(node, inits, dims)
        if plan is None:
            nodes.append(node)
            continue
        c, k, h, w, o = plan
        # The Conv's weight is needed as a MatMul weight [C*k*k, O].
        from onnx.external_data_helper import load_external_data_for_tensor

        weight = inits[node.input[1]]
        if weight.HasField("data_location") and weight.data_location == onnx.TensorProto.EXTERNAL:
            load_external_data_for_tensor(weight, str(src.parent))
        wmat = numpy_helper.to_array(weight).reshape(o, c * k * k).T.copy()
        base = node.name or node.output[0]
        names = {x: f"{base}/as_matmul/{x}" for x in ("s1", "r1", "t1", "s2", "r2", "w", "mm")}
        names |= {x: f"{base}/as_matmul/{x}" for x in ("add", "t2", "s3")}
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array([0, c, h, k, w, k], np.int64), names["s1"]),
                numpy_helper.from_array(np.array([0, h * w, c * k * k], np.int64), names["s2"]),
                numpy_helper.from_array(np.array([0, o, h, w], np.int64), names["s3"]),
                numpy_helper.from_array(wmat, names["w"]),
            ]
        )
        mm_out = names["mm"]
        new = [
            helper.make_node("Reshape", [node.input[0], names["s1"]], [names["r1"]]),
            helper.make_node("Transpose", [names["r1"]], [names["t1"]], perm=[0, 2, 4, 1, 3, 5]),
            helper.make_node("Reshape", [names["t1"], names["s2"]], [names["r2"]]),
            helper.make_node("MatMul", [names["r2"], names["w"]], [mm_out], name=f"{base}/MatMul"),
        ]
        if len(node.input) > 2 and node.input[2]:
            new.append(helper.make_node("Add", [mm_out, node.input[2]], [names["add"]]))
            mm_out = names["add"]
        new += [
            helper.make_node("Transpose", [mm_out], [names["t2"]], perm=[0, 2, 1]),
            helper.make_node("Reshape", [names["t2"], names["s3"]], [node.output[0]]),
        ]
        for i, n in enumerate(new):
            if not n.name:
                n.name = f"{base}/as_matmul/{n.op_type}_{i}"
        nodes += new
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        used = {i for n in model.graph.node for i in n.input}
        keep = [t for t in model.graph.initializer if t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    if external_data or any(
        t.HasField("data_location") and t.data_location == onnx.TensorProto.EXTERNAL
        for t in model.graph.initializer
    ):
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(src.parent))
    _save(model, dst, external_data)
    return rewritten


def _patch_conv_plan(
    node: Any, inits: dict[str, Any], dims: dict[str, list[int | None]]
) -> tuple[int, int, int, int, int] | None:
    """(C, k, h, w, O) when `node` is a Conv that is exactly a patch MatMul, else None."""
    from onnx import helper

    if node.op_type != "Conv" or node.input[1] not in inits:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    wshape = list(inits[node.input[1]].dims)
    if len(wshape) != 4 or wshape[2] != wshape[3]:
        return None
    o, c, k, _ = wshape
    x = dims.get(node.input[0])
    if (
        attrs.get("group", 1) != 1
        or list(attrs.get("strides", [1, 1])) != [k, k]
        or list(attrs.get("dilations", [1, 1])) not in ([1, 1],)
        or any(attrs.get("pads", [0, 0, 0, 0]))
        or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID")
        or x is None
        or len(x) != 4
        or x[1] != c
        or not x[2]
        or not x[3]
        or x[2] % k
        or x[3] % k
    ):
        return None
    return c, k, x[2] // k, x[3] // k, o


def activation_ranges(path: str | Path, names: Sequence[str], calibration: Any) -> dict:
    """(min, max) of each named tensor of the fp32 graph `path` over `calibration`,
    run in batches of 8 by onnxruntime's CPU EP with every graph optimization off.

    The graph is re-saved beside `path` with the tensors as extra outputs and its
    weights left where they are (a tower with external data reads them from there)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    present = {o.name for o in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    probe = path.with_name(f"{path.stem}.ranges.onnx")
    onnx.save(model, str(probe))
    del model
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(probe), so, providers=["CPUExecutionProvider"])
    finally:
        probe.unlink(missing_ok=True)
    feed = session.get_inputs()[0].name
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    for i in range(0, len(calibration), 8):
        outs = session.run(list(names), {feed: calibration[i : i + 8]})
        for n, v in zip(names, outs, strict=True):
            lo[n] = min(lo[n], float(v.min()))
            hi[n] = max(hi[n], float(v.max()))
    return {n: (lo[n], hi[n]) for n in names}


def freeze_activation_scales(
    dynamic: str | Path,
    reference: str | Path,
    dst: str | Path,
    calibration: Any,
    *,
    external_data: bool = False,
) -> int:
    """Makes a dynamically quantized graph static: each DynamicQuantizeLinear becomes a
    QuantizeLinear with the u8 scale and zero point DynamicQuantizeLinear would compute
    over the calibration range of its input (measured on `reference`, the fp32 graph
    that was quantized). The MatMulInteger kernels stay (onnxruntime fuses them with
    their scaling into MatMulIntegerToFloat), minus the per-run min/max pass, and an
    item's result no longer depends on its batch mates.

    Returns:
        How many DynamicQuantizeLinear nodes were frozen.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    dynamic, dst = Path(dynamic), Path(dst)
    model = onnx.load(str(dynamic))
    dql = [n for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    ranges = activation_ranges(reference, sorted({n.input[0] for n in dql}), calibration)
    nodes = []
    for node in model.graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        # As DynamicQuantizeLinear: the range always includes 0, u8, round-half-even.
        lo, hi = ranges[node.input[0]]
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = np.float32((hi - lo) / 255.0) or np.float32(1.0)
        zero = int(np.clip(np.round(-lo / scale), 0, 255))
        y, y_scale, y_zero = node.output
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(np.array(scale, dtype=np.float32), y_scale),
                numpy_helper.from_array(np.array(zero, dtype=np.uint8), y_zero),
            ]
        )
        nodes.append(
            onnx.helper.make_node(
                "QuantizeLinear", [node.input[0], y_scale, y_zero], [y], name=f"{node.name}_static"
            )
        )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    fuse_integer_to_float(model)
    _save(model, dst, external_data)
    return len(dql)


def fuse_integer_to_float(model: Any) -> int:
    """Rewrites each MatMulInteger -> Cast -> Mul(a_scale * b_scale) [-> Add(bias)] chain
    of a graph whose activation scales are constants into one com.microsoft
    MatMulIntegerToFloat (scaling and bias in the GEMM's epilogue, no int32 tensor
    written and read again by three more ops).

    onnxruntime makes this fusion itself for dynamic graphs, where a_scale comes from
    DynamicQuantizeLinear; with a constant a_scale its constant folding first merges
    the two scales into one initializer, and the fusion's pattern no longer matches
    (measured: MatMulInteger, Cast and Mul left as three kernels). Edits `model` in
    place.

    Returns:
        How many chains were fused.
    """
    from onnx import helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}

    def only_consumer(name: str, op_type: str) -> Any:
        users = consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == op_type and name not in outputs:
            return users[0]
        return None

    drop: set[int] = set()
    replace: dict[int, Any] = {}
    fused = 0
    for node in graph.node:
        if node.op_type != "MatMulInteger" or len(node.input) < 4:
            continue
        cast = only_consumer(node.output[0], "Cast")
        mul = cast and only_consumer(cast.output[0], "Mul")
        if not mul:
            continue
        scales = producer.get(mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0])
        if (
            scales is None
            or scales.op_type != "Mul"
            or not all(i in inits for i in scales.input)
            or len(consumers.get(scales.output[0], [])) != 1
        ):
            continue
        a_scale, b_scale = scales.input
        if len(inits[a_scale].dims) != 0:
            a_scale, b_scale = b_scale, a_scale
        n_out = int(inits[node.input[1]].dims[-1]) if node.input[1] in inits else None
        out, bias, last = mul.output[0], None, mul
        add = only_consumer(out, "Add")
        if add is not None and n_out is not None:
            other = add.input[1] if add.input[0] == out else add.input[0]
            t = inits.get(other)
            if t is not None and list(t.dims) == [n_out]:
                bias, last = other, add
        inputs = [node.input[0], node.input[1], a_scale, b_scale, node.input[2], node.input[3]]
        if bias is not None:
            inputs.append(bias)
        replace[id(node)] = helper.make_node(
            "MatMulIntegerToFloat",
            inputs,
            [last.output[0]],
            name=f"{node.name}_to_float",
            domain="com.microsoft",
        )
        drop |= {id(cast), id(mul), id(scales)} | ({id(add)} if bias is not None else set())
        fused += 1
    if fused:
        kept = [replace.get(id(n), n) for n in graph.node if id(n) not in drop]
        del graph.node[:]
        graph.node.extend(kept)
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        used = {i for n in graph.node for i in n.input}
        keep = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return fused


def _quantize_frozen(
    src: Path,
    dst: Path,
    options: Int8Options,
    exclude: list[str],
    calibration: Any,
    external_data: bool = False,
) -> None:
    """Static int8 with MatMulInteger kernels: onnxruntime's dynamic quantization of the
    weight MatMuls (activation x activation MatMuls stay fp32), then every activation
    scale frozen to its calibrated range."""
    dynamic = dst.with_name(f"{dst.stem}.dynamic.onnx")
    try:
        _quantize(src, dynamic, options, exclude + activation_matmuls(src), external_data)
        freeze_activation_scales(dynamic, src, dst, calibration, external_data=external_data)
    finally:
        dynamic.unlink(missing_ok=True)
        Path(f"{dynamic}.data").unlink(missing_ok=True)
