"""The request parser of `cliprt serve` on its own (no server): base64 images as
clients send them, on one line or with MIME line breaks, and bad ones refused."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

pytest.importorskip("orjson", reason="needs the serve extra (orjson)")

from PIL import Image

from cliprt.serve.limits import Limits
from cliprt.serve.protocol import HttpError, ImageInput, parse_embeddings, parse_json


def _png() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_base64_on_one_line_or_with_line_breaks_gives_the_same_bytes() -> None:
    raw = _png()
    plain = base64.b64encode(raw).decode()
    mime = base64.encodebytes(raw).decode()  # a line break every 76 characters
    assert "\n" in mime
    for value in (plain, mime, " " + plain + "\r\n", "data:image/png;base64," + mime):
        req = parse_embeddings({"input": [{"image": value}]}, Limits())
        assert req.inputs == [ImageInput(raw)]


@pytest.mark.parametrize("value", ["aGVsbG8", "%%%not base64", "aGVs bG8=!", "é" * 8])
def test_bad_base64_is_a_422_that_names_the_item(value: str) -> None:
    with pytest.raises(HttpError) as info:
        parse_embeddings({"input": ["a text", {"image": value}]}, Limits())
    assert info.value.status == 422 and "input[1]" in info.value.message


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]", b"NaN"])
def test_bodies_that_are_not_a_json_object_are_400(body: bytes) -> None:
    with pytest.raises(HttpError) as info:
        parse_json(body)
    assert info.value.status == 400 and info.value.kind == "bad_json"
