"""Int8 token embedding: a graph pass over an int8 variant that stores the text tower's
token-embedding table as int8 rows with one fp32 scale per row.

The table is most of an int8 text tower (ViT-B/32: 49408 x 512 fp32 = 101 MB of 168 MB)
and dynamic quantization leaves it in fp32 (it quantizes MatMul inputs, not Gather data).
Only the rows a prompt uses are dequantized, after the lookup:

    Gather(table_int8, ids) -> Cast(float) -> Mul(Gather(scales, ids)) -> embeddings

The lookup comes first on purpose: DequantizeLinear applied to the whole table would be
constant-folded by onnxruntime at session creation, bringing the fp32 table back into
memory. Per-row symmetric scales (max |row| / 127) bound each element's error by half a
step of its own row, so rare tokens with small norms keep their precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A table smaller than this is not worth a pass (position embeddings: 77 rows).
MIN_ROWS = 1024


@dataclass(frozen=True)
class EmbeddingQuant:
    """What the pass did to one table; recorded in the manifest."""

    table: str
    rows: int
    width: int
    bytes_before: int
    bytes_after: int
    max_abs_error: float  # largest |dequantized - fp32| over the table

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "rows": self.rows,
            "width": self.width,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "max_abs_error": self.max_abs_error,
            "scheme": "int8 rows, symmetric, one fp32 scale per row; Gather then Cast*scale",
        }


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 quantization of a 2-D fp32 table.

    Returns:
        (q int8 (rows, width), scales float32 (rows, 1)) with table ~= q * scales.
    """
    table = np.asarray(table, dtype=np.float32)
    peak = np.abs(table).max(axis=1, keepdims=True)
    # An all-zero row gets scale 1 (its codes are 0 anyway): never divide by zero.
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(table / scales), -127, 127).astype(np.int8)
    return q, scales


def quantize_token_embeddings(
    path: str | Path, *, min_rows: int = MIN_ROWS
) -> list[EmbeddingQuant]:
    """Rewrites `path` in place: every Gather whose data is a 2-D fp32 initializer of at
    least `min_rows` rows (a vocabulary, not the 77 positions) reads int8 rows instead;
    its indices are the token ids, straight from the graph input in a fused graph or
    through a Reshape in the unfused one that the static int8 formulation quantizes. A graph without such a Gather (a vision tower) is left untouched.

    Returns:
        One EmbeddingQuant per rewritten table (empty when nothing matched).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    done: list[EmbeddingQuant] = []
    for node in list(graph.node):
        if node.op_type != "Gather" or len(node.input) != 2:
            continue
        data, ids = node.input
        init = inits.get(data)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if (
            init is None
            or axis != 0
            or init.data_type != TensorProto.FLOAT
            or len(init.dims) != 2
            or init.dims[0] < min_rows
            or consumers.get(data, 0) != 1  # a table shared with another op stays fp32
        ):
            continue
        table = numpy_helper.to_array(init)
        q, scales = quantize_rows(table)
        err = float(np.abs(q.astype(np.float32) * scales - table).max())
        q_name, s_name = f"{data}_int8", f"{data}_row_scale"
        out = node.output[0]
        new_nodes = [
            helper.make_node(
                "Gather", [q_name, ids], [f"{out}_int8"], name=f"{node.name}_int8", axis=0
            ),
            helper.make_node(
                "Gather", [s_name, ids], [f"{out}_scale"], name=f"{node.name}_scale", axis=0
            ),
            helper.make_node(
                "Cast",
                [f"{out}_int8"],
                [f"{out}_float"],
                name=f"{node.name}_cast",
                to=TensorProto.FLOAT,
            ),
            helper.make_node(
                "Mul", [f"{out}_float", f"{out}_scale"], [out], name=f"{node.name}_dequant"
            ),
        ]
        index = list(graph.node).index(node)
        graph.node.remove(node)
        for k, new in enumerate(new_nodes):
            graph.node.insert(index + k, new)
        graph.initializer.remove(init)
        graph.initializer.extend(
            [numpy_helper.from_array(q, q_name), numpy_helper.from_array(scales, s_name)]
        )
        done.append(
            EmbeddingQuant(
                table=data,
                rows=int(table.shape[0]),
                width=int(table.shape[1]),
                bytes_before=int(table.nbytes),
                bytes_after=int(q.nbytes + scales.nbytes),
                max_abs_error=err,
            )
        )
    if done:
        onnx.checker.check_model(model)
        tmp = path.with_name(f".{path.name}.tmp")
        onnx.save(model, str(tmp))
        tmp.replace(path)
    return done
