"""The app of `cliprt serve`: endpoints over one :class:`Batcher`.

The POST endpoints (embeddings, classify, search) are handlers of (body, timeout) ->
JSON, served as plain ASGI by :class:`cliprt.serve.endpoints.PostEndpoints` (body under
the byte limit, errors as JSON with their status, metrics); the rest (health, readiness,
metrics, 404s, the lifespan that starts and drains the batcher) is a Starlette app
behind it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cliprt.runtime.batching import Batcher
from cliprt.runtime.index import Index
from cliprt.runtime.model import ClipModel, classify_embeddings
from cliprt.serve.endpoints import PostEndpoints
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


def create_app(
    model: ClipModel,
    *,
    limits: Limits | None = None,
    batching: dict[str, Any] | None = None,
    search_index: SearchIndex | None = None,
    name: str | None = None,
) -> PostEndpoints:
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

    async def embeddings(body: bytes, timeout_ms: float) -> dict[str, Any]:
        doc = parse_json(body)
        req = parse_embeddings(doc, limits)
        emb = await _embed(state, req.inputs, timeout_ms)
        if req.encoding_format == "base64":
            vectors: list[Any] = [
                base64.b64encode(row.astype("<f4").tobytes()).decode() for row in emb
            ]
        else:
            # float64: each number as the float64 repr of the float32 value, exactly as
            # json.dumps(emb.tolist()) wrote it (orjson, endpoints._answer).
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

    async def classify(body: bytes, timeout_ms: float) -> dict[str, Any]:
        doc = parse_json(body)
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

    async def search(body: bytes, timeout_ms: float) -> dict[str, Any]:
        if search_index is None:
            raise HttpError(404, "no_index", "this server has no index; start it with --index FILE")
        doc = parse_json(body)
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

    rest = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_route, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    rest.state.cliprt = state
    return PostEndpoints(
        rest,
        {
            "/v1/embeddings": ("embeddings", embeddings),
            "/v1/classify": ("classify", classify),
            "/v1/search": ("search", search),
        },
        metrics=metrics,
        limits=limits,
    )
