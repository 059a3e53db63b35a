"""`cliprt serve MODEL`: the HTTP server on uvicorn (needs the `serve` extra).

Registering the command imports nothing of the web stack; the handler does, and says
how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from cliprt.errors import CliprtError, InputError

logger = logging.getLogger("cliprt.serve")

_EXAMPLES = """\
examples:
  cliprt serve shapes --port 8000
  cliprt serve models/vitb32 --precision int8 --threads 4 --max-batch 32 --max-wait-ms 2
  cliprt serve models/vitb32 --index photos.cix          # photos.cix.paths.json maps ids to paths
  curl -s localhost:8000/v1/embeddings -d '{"input": ["a red circle"]}'
"""


def register(subparsers: Any) -> None:
    """Adds the `serve` subcommand."""
    from cliprt.serve.limits import Limits

    d = Limits()
    p = subparsers.add_parser(
        "serve",
        help="serve embeddings, classification and search over HTTP (serve extra)",
        description="An HTTP server over the micro-batching front: POST /v1/embeddings "
        "(OpenAI's shape), /v1/classify, /v1/search; GET /healthz, /readyz, /metrics. "
        "SIGTERM stops accepting, drains, and exits 0.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="model folder or shipped model name (shapes)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (8000)")
    p.add_argument("--precision", default="auto", help="fp32 | fp16 | int8 | auto (default)")
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads per tower")
    spin = p.add_mutually_exclusive_group()
    spin.add_argument(
        "--spinning",
        dest="spinning",
        action="store_true",
        help="let idle onnxruntime threads spin between the ops of a tower call (never "
        "between calls). Off by default: under load it cost 12-15%% more CPU per request "
        "on 2 cores, the cores the image decoders and the event loop need",
    )
    spin.add_argument(
        "--no-spinning",
        dest="spinning",
        action="store_false",
        help="idle onnxruntime threads sleep (the default)",
    )
    p.set_defaults(spinning=False)
    p.add_argument("--max-batch", type=int, default=32, help="rows per tower call (32)")
    p.add_argument(
        "--max-wait-ms", type=float, default=2.0, help="wait for batch mates under load (2 ms)"
    )
    p.add_argument("--max-queue", type=int, default=1024, help="queued items per lane (1024)")
    p.add_argument("--decode-workers", type=int, default=None, help="image decoding threads")
    p.add_argument(
        "--timeout-ms",
        type=float,
        default=d.timeout_ms,
        help=f"request deadline ({d.timeout_ms:g} ms)",
    )
    p.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes, help="(16 MiB)")
    p.add_argument(
        "--max-items", type=int, default=d.max_items, help=f"per request ({d.max_items})"
    )
    p.add_argument(
        "--max-text-chars", type=int, default=d.max_text_chars, help=f"({d.max_text_chars})"
    )
    p.add_argument(
        "--max-image-pixels", type=int, default=d.max_image_pixels, help=f"({d.max_image_pixels})"
    )
    p.add_argument(
        "--index",
        default=None,
        metavar="FILE",
        help="an index file (cliprt search --index, Index.save) for /v1/search; "
        "FILE.paths.json, when present, maps its ids to paths",
    )
    p.add_argument(
        "--drain-s", type=int, default=30, help="on SIGTERM, longest wait for requests (30 s)"
    )
    p.set_defaults(handler=_serve)


def _load_index(path: str) -> Any:
    from cliprt.runtime.index import Index
    from cliprt.serve.app import SearchIndex

    index = Index.load(path)
    paths_file = Path(path).with_name(Path(path).name + ".paths.json")
    paths = None
    if paths_file.is_file():
        paths = json.loads(paths_file.read_text(encoding="utf-8"))
        if not isinstance(paths, list) or len(paths) != len(index):
            raise InputError(
                f"{paths_file} must be a JSON list of {len(index)} paths (one per index row); rebuild it"
            )
    return SearchIndex(index, paths)


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from cliprt.serve.app import create_app
    except ImportError as exc:
        raise CliprtError(
            f"`cliprt serve` needs the serve extra ({exc.name} is missing): pip install 'cliprt[serve]'"
        ) from exc
    from cliprt.runtime.model import load
    from cliprt.runtime.providers import default_threads
    from cliprt.serve.limits import Limits

    logger.setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    limits = Limits(
        max_body_bytes=args.max_body_bytes,
        max_items=args.max_items,
        max_text_chars=args.max_text_chars,
        max_image_pixels=args.max_image_pixels,
        timeout_ms=args.timeout_ms,
    )
    batching = {
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "max_queue": args.max_queue,
        "decode_workers": args.decode_workers,
    }
    model = load(
        args.model,
        precision=args.precision,
        device=args.device,
        threads=args.threads,
        spinning=args.spinning,
        max_image_pixels=args.max_image_pixels,
        warmup_batches=sorted({1, args.max_batch}),
    )
    search_index = _load_index(args.index) if args.index else None
    if search_index is not None and search_index.index.dim != model.embed_dim:
        raise InputError(
            f"--index {args.index} holds {search_index.index.dim}-d rows but the model makes "
            f"{model.embed_dim}-d embeddings; build the index with this model"
        )
    app = create_app(model, limits=limits, batching=batching, search_index=search_index)
    logger.info(
        "cliprt serve %s: device=%s precision=%s threads=%s spinning=%s providers=%s",
        model.folder,
        model.device,
        model.precision,
        args.threads or default_threads(),
        args.spinning,
        model.providers,
    )
    logger.info(
        "http: event loop %s, parser %s (uvicorn picks uvloop and httptools when installed)",
        "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "httptools" if importlib.util.find_spec("httptools") else "h11",
    )
    logger.info(
        "batching: max_batch=%d max_wait_ms=%g max_queue=%d; limits: %s; index: %s",
        args.max_batch,
        args.max_wait_ms,
        args.max_queue,
        limits,
        f"{len(search_index.index)} rows" if search_index else "none",
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=False,
        # No X-Forwarded-* rewriting: nothing here reads the client's address (no access
        # log), and the middleware cost a header scan per request.
        proxy_headers=False,
        lifespan="on",
        timeout_graceful_shutdown=args.drain_s,
    )
    # uvicorn handles SIGTERM (stop accepting, finish requests, run the shutdown that
    # drains the batcher), then re-raises the signal to the handler that was installed
    # before it: this no-op one, so that a graceful stop exits 0.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        model.close()
    if not server.started:
        raise CliprtError(
            f"the server did not start on {args.host}:{args.port} (see the log above)"
        )
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    from cliprt.cli import main

    sys.exit(main(["serve", *sys.argv[1:]]))
