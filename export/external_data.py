"""Writing a graph whose weights are still on disk, one tensor at a time.

A tower over the external-data threshold is loaded without its weights
(``onnx.load(..., load_external_data=False)``): its initializers keep their
``external_data`` references into the source folder. Passes that change the graph
(fusion, fp16 conversion) then run on a graph of a few MB, and this module writes the
result: every large initializer goes to one data file beside the new .onnx, copied
from the source file (or converted to fp16 on the way) one tensor at a time, so the
weights are never all in memory, let alone twice (as onnx.load + save, symbolic shape
inference's model copy, or protobuf's arena would hold them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cliprt.errors import ExportError

# Tensors this large or larger go to the data file (onnx's own default threshold).
SIZE_THRESHOLD = 1024
# Offsets of large tensors are aligned so that onnxruntime can map them from the file
# instead of copying them (it maps external data whose offset is page aligned; 64 KiB
# covers every platform's allocation granularity).
_ALIGN_LARGE, _ALIGN_SMALL, _LARGE = 65536, 4096, 65536


def data_file_name(dst: str | Path) -> str:
    """The one external data file of `dst`: "<dst name>.data", beside it."""
    return Path(dst).name + ".data"


def save_streamed(model: Any, dst: str | Path, *, src_dir: str | Path) -> Path:
    """Writes `model` (an onnx.ModelProto) to `dst` with its weights in one data file.

    Initializers of the main graph that still reference external data (relative to
    `src_dir`) are copied from there; inline ones of SIZE_THRESHOLD bytes or more are
    moved out. A tensor whose data_type is FLOAT16 but whose stored bytes are float32
    (onnxruntime's fp16 converter flips the type of tensors it cannot see the data of)
    is converted to float16 on the way, with the converter's own clamping. The data
    file is written beside `dst` under a temporary name and renamed in last.

    Args:
        model: the graph; its initializers are rewritten to point at the new file.
        dst: the .onnx to write.
        src_dir: where the model's current external data locations are resolved.

    Returns:
        `dst`.

    Raises:
        ExportError: a referenced data file is missing or shorter than a tensor says.
    """
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    dst, src_dir = Path(dst), Path(src_dir)
    name = data_file_name(dst)
    data_path = dst.parent / name
    tmp = data_path.with_name(f".{name}.tmp")
    sources: dict[str, BinaryIO] = {}
    try:
        with open(tmp, "wb") as out:
            for tensor, movable in tensors_of(model.graph):
                if uses_external_data(tensor):
                    payload = _read_external(tensor, ExternalDataInfo(tensor), src_dir, sources)
                elif (
                    movable
                    and tensor.HasField("raw_data")
                    and len(tensor.raw_data) >= SIZE_THRESHOLD
                ):
                    payload = tensor.raw_data
                else:
                    continue
                align = _ALIGN_LARGE if len(payload) >= _LARGE else _ALIGN_SMALL
                offset = -(-out.tell() // align) * align
                out.write(b"\0" * (offset - out.tell()))
                out.write(payload)
                tensor.ClearField("raw_data")
                del tensor.external_data[:]
                for key, value in (
                    ("location", name),
                    ("offset", offset),
                    ("length", len(payload)),
                ):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = key, str(value)
                tensor.data_location = onnx.TensorProto.EXTERNAL
                del payload
        os.replace(tmp, data_path)
    finally:
        for f in sources.values():
            f.close()
        tmp.unlink(missing_ok=True)
    onnx.save_model(model, str(dst))
    return dst


def tensors_of(graph: Any) -> Iterator[tuple[Any, bool]]:
    """Every tensor of `graph` that may hold external data, with whether it is an
    initializer of the main graph (moved out when large; tensors in node attributes,
    e.g. Constant values torch stores externally past 2 GB, are only re-pointed), the
    subgraphs of If/Loop/Scan included."""
    for tensor in graph.initializer:
        yield tensor, True
    stack = list(graph.node)
    while stack:
        node = stack.pop()
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t, False
            yield from ((t, False) for t in attr.tensors)
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from ((t, False) for t in sub.initializer)
                stack.extend(sub.node)


def _read_external(tensor: Any, info: Any, src_dir: Path, sources: dict[str, BinaryIO]) -> bytes:
    import numpy as np
    import onnx

    path = (src_dir / info.location).resolve()
    if not path.is_file():
        raise ExportError(f"tensor {tensor.name!r}: its external data file {path} is missing")
    f = sources.get(str(path))
    if f is None:
        f = sources[str(path)] = open(path, "rb")  # noqa: SIM115 (closed by the caller)
    f.seek(info.offset or 0)
    payload = f.read() if info.length is None else f.read(info.length)
    numel = int(np.prod(tensor.dims)) if len(tensor.dims) else 1
    if info.length is not None and len(payload) != info.length:
        raise ExportError(
            f"tensor {tensor.name!r}: {path} holds {len(payload)} of its {info.length} bytes"
        )
    if tensor.data_type == onnx.TensorProto.FLOAT16 and len(payload) == 4 * numel:
        from onnxruntime.transformers.float16 import convert_np_to_float16

        payload = convert_np_to_float16(np.frombuffer(payload, dtype=np.float32)).tobytes()
    return payload


def save_onnx_model_streamed(model: Any, dst: str | Path, *, src_dir: str | Path) -> Path:
    """save_streamed for an onnxruntime.transformers OnnxModel, with what its own
    save_model_to_file does first: nodes in topological order, and the com.microsoft
    opset declared when fused ops use it."""
    model.topological_sort()
    proto = model.model
    uses_ms = any(n.domain == "com.microsoft" for n in proto.graph.node)
    if uses_ms and not any(o.domain == "com.microsoft" for o in proto.opset_import):
        opset = proto.opset_import.add()
        opset.domain, opset.version = "com.microsoft", 1
    return save_streamed(proto, dst, src_dir=src_dir)


def externalize(path: str | Path) -> bool:
    """Moves the large inline initializers of the .onnx at `path` into one data file
    beside it (save_streamed), in place; a graph already without any is left as it is.

    torch.onnx.export keeps a graph under 2 GB inline (a ViT-H text tower: 1.4 GB in
    the .onnx itself); every later pass over it then parses and copies all its weights.
    Moved out once, those passes read the graph alone.

    Returns:
        Whether the file was rewritten.
    """
    import onnx
    from onnx.external_data_helper import uses_external_data

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    inline = any(
        not uses_external_data(t) and len(t.raw_data) >= SIZE_THRESHOLD
        for t in model.graph.initializer
    )
    if not inline:
        return False
    # In place: the data file is written under a temporary name and renamed in before
    # the (small) graph replaces the .onnx.
    save_streamed(model, path, src_dir=path.parent)
    return True
