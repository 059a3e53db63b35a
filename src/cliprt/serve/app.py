"""The Starlette app of `cliprt serve`: routes over one :class:`Batcher`.

Every handler reads the body under the byte limit, parses it into a typed request
(cliprt.serve.protocol), awaits the batcher, and answers JSON. Every failure becomes a
JSON error with its status (see :func:`_error_for`), counted by kind in /metrics; no
request can take the server down for the others.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cliprt.errors import BatcherClosed, DeadlineExceeded, InputError, Overloaded
from cliprt.runtime.batching import Batcher
from cliprt.runtime.index import Index
from cliprt.runtime.model import ClipModel, classify_embeddings
from cliprt.serve.limits import Limits
from cliprt.serve.metrics import CONTENT_TYPE, Metrics
from cliprt.serve.protocol import (
    HttpError,
    ImageInput,
    Input,
    TextInput,
    parse_classify,
    parse_embeddings,
    parse_json,
    parse_search,
)

logger = logging.getLogger("cliprt.serve")


class FastJSONResponse(JSONResponse):
    """JSON through orjson, numpy arrays included.

    The stdlib encoder took about 0.3-0.7 ms per 512-float embedding (``tolist()`` and
    a repr per float), a large part of the 1 ms HTTP budget; orjson writes the same
    numbers (float64 arrays: the shortest repr that reads back as the same float64, as
    ``json.dumps`` does) in about 10 us.
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass
class SearchIndex:
    """The index searched by POST /v1/search, and the paths its ids map to (if known)."""

    index: Index
    paths: Sequence[str] | None = None


class _State:
    def __init__(
        self, model: ClipModel, batcher: Batcher, metrics: Metrics, limits: Limits, name: str
    ) -> None:
        self.model = model
        self.batcher = batcher
        self.metrics = metrics
        self.limits = limits
        self.name = name
        self.ready = False


def _error_for(exc: BaseException) -> HttpError:
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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HttpError(400, "bad_request", f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise HttpError(
                413,
                "body_too_large",
                f"the body of {declared} bytes exceeds max_body_bytes={limit}; send fewer or smaller items",
            )
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(
                    413,
                    "body_too_large",
                    f"the body exceeds max_body_bytes={limit}; send fewer or smaller items",
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise HttpError(400, "truncated_body", "the client disconnected mid-body") from None
    return b"".join(chunks)


def _timeout_ms(request: Request, limits: Limits) -> float:
    asked = request.headers.get("x-timeout-ms")
    if asked is None:
        return limits.timeout_ms
    try:
        value = float(asked)
    except ValueError:
        raise HttpError(422, "invalid_input", f"X-Timeout-Ms {asked!r} is not a number") from None
    if not value >= 0:
        raise HttpError(422, "invalid_input", f"X-Timeout-Ms must be >= 0, got {asked!r}")
    return min(value, limits.timeout_ms)


async def _gather_or_cancel(*aws: Awaitable[np.ndarray]) -> list[np.ndarray]:
    if len(aws) == 1:
        # One lane (the usual single-modality request): no task to make; cancelling
        # this request still cancels its batcher future.
        return [await aws[0]]
    # The first failure cancels the other lane's part, which the batcher then drops.
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        raise


async def _embed(state: _State, inputs: Sequence[Input], timeout_ms: float) -> np.ndarray:
    """Embeddings (n, D) of mixed texts and images, in input order."""
    texts = [(i, x.text) for i, x in enumerate(inputs) if isinstance(x, TextInput)]
    images = [(i, x.data) for i, x in enumerate(inputs) if isinstance(x, ImageInput)]
    parts: list[Awaitable[np.ndarray]] = []
    if texts:
        parts.append(state.batcher.aembed_texts([t for _, t in texts], timeout_ms=timeout_ms))
    if images:
        parts.append(state.batcher.aembed_images([d for _, d in images], timeout_ms=timeout_ms))
    results = await _gather_or_cancel(*parts)
    out = np.empty((len(inputs), state.model.embed_dim), dtype=np.float32)
    for rows, emb in zip([r for r in (texts, images) if r], results, strict=True):
        out[[i for i, _ in rows]] = emb
    return out


def _route(
    state: _State, endpoint: str, handler: Callable[[Request, float], Awaitable[Any]]
) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        started = time.perf_counter()
        metrics = state.metrics
        metrics.in_flight.inc()
        try:
            timeout_ms = _timeout_ms(request, state.limits)
            response = FastJSONResponse(await handler(request, timeout_ms))
        except Exception as exc:
            err = _error_for(exc)
            metrics.errors.labels(endpoint, err.kind).inc()
            response = FastJSONResponse(err.body(), status_code=err.status, headers=err.headers)
        finally:
            metrics.in_flight.dec()
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    return serve


def create_app(
    model: ClipModel,
    *,
    limits: Limits | None = None,
    batching: dict[str, Any] | None = None,
    search_index: SearchIndex | None = None,
    name: str | None = None,
) -> Starlette:
    """The ASGI app serving `model`.

    Args:
        model: a loaded model.
        limits: per-request limits.
        batching: keyword arguments of :class:`Batcher` (max_batch, max_wait_ms,
            max_queue, decode_workers).
        search_index: the index POST /v1/search answers from (None: 404 there).
        name: the model name echoed in responses (default: the folder's name).

    The batcher starts with the app and is closed (drained) at its shutdown.
    """
    limits = limits or Limits()
    metrics = Metrics()
    batcher = Batcher(
        model,
        on_batch=metrics.on_batch,
        max_image_pixels=limits.max_image_pixels,
        **(batching or {}),
    )
    metrics.watch(batcher)
    state = _State(model, batcher, metrics, limits, name or Path(model.folder).name)

    async def embeddings(request: Request, timeout_ms: float) -> dict[str, Any]:
        doc = parse_json(await _read_body(request, limits.max_body_bytes))
        req = parse_embeddings(doc, limits)
        emb = await _embed(state, req.inputs, timeout_ms)
        if req.encoding_format == "base64":
            vectors: list[Any] = [
                base64.b64encode(row.astype("<f4").tobytes()).decode() for row in emb
            ]
        else:
            # float64: each number as the float64 repr of the float32 value, exactly as
            # json.dumps(emb.tolist()) wrote it (orjson, FastJSONResponse).
            vectors = list(emb.astype(np.float64))
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": state.name,
            # Tokens are not counted (texts are tokenized once, inside the batcher).
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    async def classify(request: Request, timeout_ms: float) -> dict[str, Any]:
        doc = parse_json(await _read_body(request, limits.max_body_bytes))
        req = parse_classify(doc, limits)
        img, txt = await _gather_or_cancel(
            batcher.aembed_images([x.data for x in req.images], timeout_ms=timeout_ms),
            batcher.aembed_texts(req.labels, timeout_ms=timeout_ms),
        )
        probs = classify_embeddings(
            img, txt, model.logit_scale, scoring=model.scoring, logit_bias=model.logit_bias
        )
        return {
            "object": "list",
            "labels": req.labels,
            "data": [
                {"index": i, "probs": row.tolist(), "label": req.labels[int(np.argmax(row))]}
                for i, row in enumerate(probs)
            ],
            "model": state.name,
        }

    async def search(request: Request, timeout_ms: float) -> dict[str, Any]:
        if search_index is None:
            raise HttpError(404, "no_index", "this server has no index; start it with --index FILE")
        doc = parse_json(await _read_body(request, limits.max_body_bytes))
        req = parse_search(doc, limits)
        queries = await _embed(state, req.queries, timeout_ms)
        scores, ids = await asyncio.to_thread(search_index.index.search, queries, req.k)
        paths = search_index.paths
        data = []
        for qi, (srow, irow) in enumerate(zip(scores, ids, strict=True)):
            hits = []
            for s, i in zip(srow.tolist(), irow.tolist(), strict=True):
                if i < 0:
                    break
                hit: dict[str, Any] = {"id": i, "score": s}
                if paths is not None and 0 <= i < len(paths):
                    hit["path"] = paths[i]
                hits.append(hit)
            data.append({"index": qi, "results": hits})
        return {"object": "list", "data": data, "model": state.name}

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if state.ready and not batcher.closed:
            return JSONResponse({"status": "ready", "model": state.name})
        return JSONResponse({"status": "not ready"}, status_code=503)

    async def metrics_route(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            # uvicorn has stopped accepting and let in-flight requests finish; what is
            # still queued is computed, then the lanes' threads stop.
            await asyncio.to_thread(batcher.close)
            logger.info("batcher drained and closed")

    app = Starlette(
        routes=[
            Route("/v1/embeddings", _route(state, "embeddings", embeddings), methods=["POST"]),
            Route("/v1/classify", _route(state, "classify", classify), methods=["POST"]),
            Route("/v1/search", _route(state, "search", search), methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_route, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.cliprt = state
    return app
