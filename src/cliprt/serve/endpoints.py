"""The POST endpoints of `cliprt serve` as plain ASGI, in front of the Starlette app.

Why not Starlette routes: a request through Starlette's error and exception middleware,
its router, its Request object and its Response costs about 0.2 ms of event-loop CPU
on the 2-core box (profiled), a fifth of the 1 ms that HTTP may add to a request. These
three endpoints need none of it: a body read under a byte limit, two headers, JSON out.
Everything else (GET /healthz, /readyz, /metrics, 404s, the lifespan that starts and
drains the batcher) goes to the Starlette app unchanged.

Every failure of a handler becomes a JSON error with its status (see :func:`error_for`),
counted by kind in /metrics; no request can take the server down for the others.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from cliprt.errors import BatcherClosed, DeadlineExceeded, InputError, Overloaded
from cliprt.serve.limits import Limits
from cliprt.serve.metrics import Metrics
from cliprt.serve.protocol import HttpError

logger = logging.getLogger("cliprt.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# (body, timeout_ms) -> the JSON document answered with 200.
Handler = Callable[[bytes, float], Awaitable[Any]]

_JSON = (b"content-type", b"application/json")


def error_for(exc: BaseException) -> HttpError:
    """The HTTP answer to an error raised while serving a request."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, Overloaded):
        retry = max(1, math.ceil(exc.retry_after_s))
        return HttpError(429, "overloaded", str(exc), {"Retry-After": str(retry)})
    if isinstance(exc, DeadlineExceeded):
        return HttpError(504, "deadline_exceeded", str(exc))
    if isinstance(exc, BatcherClosed):
        return HttpError(503, "shutting_down", "the server is shutting down; retry elsewhere")
    if isinstance(exc, InputError):
        return HttpError(422, "invalid_input", str(exc))
    logger.exception("internal error", exc_info=exc)
    return HttpError(500, "internal", f"internal error ({type(exc).__name__}); see the server log")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:  # ASGI servers give header names lower-cased
            return bytes(value).decode("latin-1")
    return None


def timeout_ms(scope: Scope, limits: Limits) -> float:
    """The request's deadline: its X-Timeout-Ms header, at most the server's."""
    asked = _header(scope, b"x-timeout-ms")
    if asked is None:
        return limits.timeout_ms
    try:
        value = float(asked)
    except ValueError:
        raise HttpError(422, "invalid_input", f"X-Timeout-Ms {asked!r} is not a number") from None
    if not value >= 0:
        raise HttpError(422, "invalid_input", f"X-Timeout-Ms must be >= 0, got {asked!r}")
    return min(value, limits.timeout_ms)


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to exceed `limit` bytes."""
    declared = _header(scope, b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HttpError(400, "bad_request", f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise HttpError(
                413,
                "body_too_large",
                f"the body of {declared} bytes exceeds max_body_bytes={limit}; send fewer or smaller items",
            )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "truncated_body", "the client disconnected mid-body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(
                413,
                "body_too_large",
                f"the body exceeds max_body_bytes={limit}; send fewer or smaller items",
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
    # orjson writes numpy arrays too (the float encoding of embeddings).
    body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    raw = [_JSON, (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _Endpoint:
    """One POST endpoint: its handler and its metric children, bound once (a labels()
    lookup per request is a lock and a dict probe each)."""

    def __init__(self, name: str, handler: Handler, metrics: Metrics) -> None:
        self.name = name
        self.handler = handler
        self.metrics = metrics
        self.latency = metrics.latency.labels(name)
        self._requests: dict[int, Any] = {}

    def count(self, status: int) -> None:
        child = self._requests.get(status)
        if child is None:
            child = self._requests[status] = self.metrics.requests.labels(self.name, str(status))
        child.inc()


class PostEndpoints:
    """ASGI app: POST to one of `handlers`' paths is served here, any other method there is
    a 405; every other request (and the lifespan) goes to `app`.

    Args:
        app: the ASGI app for everything else (Starlette).
        handlers: path -> (endpoint name for metrics, handler).
        metrics: the server's metrics.
        limits: the server's per-request limits.
    """

    def __init__(
        self,
        app: ASGIApp,
        handlers: dict[str, tuple[str, Handler]],
        *,
        metrics: Metrics,
        limits: Limits,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.limits = limits
        self._endpoints = {
            path: _Endpoint(name, handler, metrics) for path, (name, handler) in handlers.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._endpoints.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            err = HttpError(
                405, "method_not_allowed", f"{scope['method']} {scope['path']}: use POST"
            )
            await _answer(send, err.status, err.body(), {"Allow": "POST"})
            return
        await self._serve(endpoint, scope, receive, send)

    async def _serve(self, endpoint: _Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        metrics = self.metrics
        metrics.in_flight.inc()
        status = 200
        try:
            try:
                deadline_ms = timeout_ms(scope, self.limits)
                body = await read_body(scope, receive, self.limits.max_body_bytes)
                doc = await endpoint.handler(body, deadline_ms)
            except Exception as exc:
                err = error_for(exc)
                status = err.status
                metrics.errors.labels(endpoint.name, err.kind).inc()
                await _answer(send, status, err.body(), err.headers)
            else:
                await _answer(send, status, doc)
        finally:
            metrics.in_flight.dec()
        endpoint.count(status)
        endpoint.latency.observe(time.perf_counter() - started)
