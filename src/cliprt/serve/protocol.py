"""The JSON bodies of `cliprt serve`: parsed and checked into typed requests, or an
:class:`HttpError` that says what was wrong, with what value, and what to do.

No web framework here: the app hands bytes in and gets dataclasses out.

Inputs. A text is a JSON string (or ``{"text": "..."}``); an image is
``{"image": "<base64>"}`` where the base64 may be a data URI
(``data:image/png;base64,...``). Images are never fetched from URLs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from cliprt.serve.limits import Limits

# Lenient about whitespace/newlines (MIME line breaks); strict about the alphabet.
_B64_SPACE = b" \t\n\r\v\f"
_DATA_URI = re.compile(r"^data:([\w.+/-]*)(;[\w=.+-]+)*;base64,", re.IGNORECASE)


class HttpError(Exception):
    """An error the server answers with a JSON body ``{"error": {"type", "message"}}``.

    Attributes:
        status: the HTTP status (4xx, 5xx).
        kind: a short machine-readable name (bad_json, invalid_input, too_large,
            overloaded, deadline_exceeded, ...), also the metrics label.
        message: what was wrong, with what value, and what to do.
        headers: extra response headers (Retry-After).
    """

    def __init__(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.kind, "message": self.message}}


def _invalid(message: str) -> HttpError:
    return HttpError(422, "invalid_input", message)


@dataclass(frozen=True)
class TextInput:
    """One text to embed."""

    text: str


@dataclass(frozen=True)
class ImageInput:
    """One image to embed, as the encoded file's bytes (PNG, JPEG, ...)."""

    data: bytes


Input = TextInput | ImageInput


@dataclass(frozen=True)
class EmbeddingsRequest:
    """POST /v1/embeddings (OpenAI's shape; images as ``{"image": base64}`` items)."""

    inputs: list[Input]
    encoding_format: str  # "float" or "base64" (little-endian float32), as OpenAI


@dataclass(frozen=True)
class ClassifyRequest:
    """POST /v1/classify: zero-shot probabilities of each image over the labels."""

    images: list[ImageInput]
    labels: list[str]


@dataclass(frozen=True)
class SearchRequest:
    """POST /v1/search: the k best rows of the server's index for each query."""

    queries: list[Input]
    k: int


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # bad UTF-8 too
        raise HttpError(
            400, "bad_json", f"the body is not valid JSON ({exc}); send a JSON object"
        ) from None
    if not isinstance(doc, dict):
        raise HttpError(
            400, "bad_json", f"the body must be a JSON object, got a JSON {type(doc).__name__}"
        )
    return doc


def decode_base64_image(value: Any, where: str, limits: Limits) -> ImageInput:
    """An image given as base64 or a base64 data URI."""
    if not isinstance(value, str) or not value:
        raise _invalid(f"{where}: an image must be a non-empty base64 string or data URI")
    match = _DATA_URI.match(value)
    if match:
        value = value[match.end() :]
    elif value.startswith(("http://", "https://", "data:")):
        raise _invalid(
            f"{where}: only base64 strings and base64 data URIs are accepted (no URL fetching); "
            f"got {value[:40]!r}..."
        )
    # Base64 is 4/3 of the bytes; the body limit already bounds it, this names the item.
    try:
        # Clients send one line almost always: decode it as it is. Stripping MIME line
        # breaks first cost a regex pass over the whole image (2 ms and more per
        # request), so it is only done when the plain decode fails.
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:
            raw = base64.b64decode(value.encode("ascii").translate(None, _B64_SPACE), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
            raise _invalid(
                f"{where}: not valid base64 ({exc}); encode the image file's bytes"
            ) from None
    if not raw:
        raise _invalid(f"{where}: the image is empty (0 bytes)")
    return ImageInput(raw)


def _text(value: Any, where: str, limits: Limits) -> TextInput:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{where}: a text must be a non-empty string, got {value!r:.60}")
    if len(value) > limits.max_text_chars:
        raise _invalid(
            f"{where}: {len(value)} characters exceeds max_text_chars={limits.max_text_chars} "
            "(CLIP reads 77 tokens); shorten it"
        )
    return TextInput(value)


def _input(value: Any, where: str, limits: Limits) -> Input:
    if isinstance(value, str):
        return _text(value, where, limits)
    if isinstance(value, dict):
        if set(value) == {"text"}:
            return _text(value["text"], where, limits)
        if set(value) == {"image"}:
            return decode_base64_image(value["image"], where, limits)
    raise _invalid(
        f'{where}: an input is a string (text), {{"text": str}} or {{"image": base64}}, '
        f"got {json.dumps(value)[:80]}"
    )


def _list(doc: dict[str, Any], key: str, limits: Limits, *, single_ok: bool) -> list[Any]:
    if key not in doc:
        raise _invalid(f"missing field {key!r}")
    value = doc[key]
    if single_ok and not isinstance(value, list):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _invalid(f"{key!r} must be a non-empty list")
    if len(value) > limits.max_items:
        raise HttpError(
            413,
            "too_many_items",
            f"{key!r} holds {len(value)} items; at most max_items={limits.max_items} per "
            "request: split it",
        )
    return value


def parse_embeddings(doc: dict[str, Any], limits: Limits) -> EmbeddingsRequest:
    """Checks an embeddings body: ``{"input": str | [str | {"text"} | {"image"}],
    "encoding_format"?: "float" | "base64", "model"?: str}``."""
    items = _list(doc, "input", limits, single_ok=True)
    fmt = doc.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise _invalid(f"encoding_format must be 'float' or 'base64', got {fmt!r}")
    return EmbeddingsRequest(
        [_input(v, f"input[{i}]", limits) for i, v in enumerate(items)], encoding_format=fmt
    )


def parse_classify(doc: dict[str, Any], limits: Limits) -> ClassifyRequest:
    """Checks a classify body: ``{"images": [base64, ...], "labels": [str, ...]}``."""
    images = _list(doc, "images", limits, single_ok=True)
    labels = _list(doc, "labels", limits, single_ok=False)
    return ClassifyRequest(
        [decode_base64_image(v, f"images[{i}]", limits) for i, v in enumerate(images)],
        [_text(v, f"labels[{i}]", limits).text for i, v in enumerate(labels)],
    )


def parse_search(doc: dict[str, Any], limits: Limits) -> SearchRequest:
    """Checks a search body: ``{"query": str | [str | {"text"} | {"image"}], "k"?: int}``."""
    queries = _list(doc, "query", limits, single_ok=True)
    k = doc.get("k", 5)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= limits.max_k:
        raise _invalid(f"k must be an integer in [1, {limits.max_k}], got {k!r}")
    return SearchRequest([_input(v, f"query[{i}]", limits) for i, v in enumerate(queries)], k)
