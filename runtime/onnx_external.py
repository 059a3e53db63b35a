"""Which external-data files an .onnx file references, read without the onnx package.

onnxruntime loads a tensor stored outside the .onnx (``data_location = EXTERNAL``) from
the ``location`` its ``external_data`` entries name, relative to the model file. A
model folder's .onnx is checked against its manifest hash, but those files would not
be: so the runtime lists them here first and refuses any the manifest does not declare.

This walks the protobuf wire format of ModelProto far enough to reach every TensorProto
onnxruntime may load: graph initializers and sparse initializers, tensors in node
attributes (Constant and friends) and the subgraphs of If/Loop/Scan, and the nodes of
model-local functions. Field numbers are those of onnx.proto (onnx 1.x); raw tensor data
is skipped, not copied, so a multi-GB file costs a scan of its field headers.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["MalformedOnnxError", "external_data_locations"]

# onnx.proto field numbers.
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_FUNCTION_NODE = 7
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_MAX_DEPTH = 64  # subgraphs nested deeper than this are not a real model
NO_LOCATION = "<external tensor without a location>"


class MalformedOnnxError(ValueError):
    """The bytes are not a well-formed ONNX protobuf."""


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise MalformedOnnxError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int | tuple[int, int]]]:
    """Yields (field number, value): an int for varints, (start, end) for bytes fields;
    fixed-width fields are skipped."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, value
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise MalformedOnnxError("a length-delimited field runs past its message")
            yield field, (pos, pos + length)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise MalformedOnnxError(f"unsupported protobuf wire type {wire}")
        if pos > end:
            raise MalformedOnnxError("a fixed-width field runs past its message")


class _Scanner:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.locations: list[str] = []

    def _sub(self, value: object) -> tuple[int, int]:
        if not isinstance(value, tuple):
            raise MalformedOnnxError("a message field has the wrong wire type")
        return value

    def model(self, start: int, end: int) -> None:
        for field, value in _fields(self.buf, start, end):
            if field == _MODEL_GRAPH:
                self.graph(*self._sub(value), 0)
            elif field == _MODEL_FUNCTIONS:
                self.function(*self._sub(value), 0)

    def graph(self, start: int, end: int, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise MalformedOnnxError("subgraphs nested too deep")
        for field, value in _fields(self.buf, start, end):
            if field == _GRAPH_NODE:
                self.node(*self._sub(value), depth)
            elif field == _GRAPH_INITIALIZER:
                self.tensor(*self._sub(value))
            elif field == _GRAPH_SPARSE_INITIALIZER:
                self.sparse(*self._sub(value))

    def function(self, start: int, end: int, depth: int) -> None:
        for field, value in _fields(self.buf, start, end):
            if field == _FUNCTION_NODE:
                self.node(*self._sub(value), depth)

    def node(self, start: int, end: int, depth: int) -> None:
        for field, value in _fields(self.buf, start, end):
            if field == _NODE_ATTRIBUTE:
                self.attribute(*self._sub(value), depth)

    def attribute(self, start: int, end: int, depth: int) -> None:
        for field, value in _fields(self.buf, start, end):
            if field in (_ATTR_T, _ATTR_TENSORS):
                self.tensor(*self._sub(value))
            elif field in (_ATTR_G, _ATTR_GRAPHS):
                self.graph(*self._sub(value), depth + 1)
            elif field in (_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS):
                self.sparse(*self._sub(value))

    def sparse(self, start: int, end: int) -> None:
        for field, value in _fields(self.buf, start, end):
            if field in (_SPARSE_VALUES, _SPARSE_INDICES):
                self.tensor(*self._sub(value))

    def tensor(self, start: int, end: int) -> None:
        external = False
        location = None
        for field, value in _fields(self.buf, start, end):
            if field == _TENSOR_DATA_LOCATION:
                external = value == _EXTERNAL
            elif field == _TENSOR_EXTERNAL_DATA:
                key, val = self.entry(*self._sub(value))
                if key == "location":
                    location = val
        if external:
            self.locations.append(location if location is not None else NO_LOCATION)

    def entry(self, start: int, end: int) -> tuple[str | None, str | None]:
        key = val = None
        for field, value in _fields(self.buf, start, end):
            if field in (_ENTRY_KEY, _ENTRY_VALUE):
                a, b = self._sub(value)
                try:
                    text = bytes(self.buf[a:b]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise MalformedOnnxError("an external_data entry is not UTF-8") from exc
                if field == _ENTRY_KEY:
                    key = text
                else:
                    val = text
        return key, val


def external_data_locations(path: str | os.PathLike[str]) -> list[str]:
    """The distinct external-data locations the .onnx file at `path` references, in
    first-seen order (empty for a self-contained model).

    Raises:
        MalformedOnnxError: the file is not a well-formed ONNX protobuf.
        OSError: the file cannot be read.
    """
    with open(Path(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise MalformedOnnxError("empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            buf = memoryview(mm)
            try:
                scanner = _Scanner(buf)
                scanner.model(0, size)
            finally:
                buf.release()
    return list(dict.fromkeys(scanner.locations))
