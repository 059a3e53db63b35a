"""cliprt.serve: the HTTP server over the micro-batching front (the `serve` extra).

    cliprt serve shapes --port 8000

or, in Python (any ASGI server):

    from cliprt.serve import create_app
    app = create_app(cliprt.load("shapes"))

The runtime never imports this package; this package uses the runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Limits", "SearchIndex", "create_app"]

if TYPE_CHECKING:
    from cliprt.serve.app import SearchIndex, create_app
    from cliprt.serve.limits import Limits


def __getattr__(name: str) -> Any:
    # Lazy: `cliprt --help` registers `serve` without the web stack installed.
    if name in ("create_app", "SearchIndex"):
        import cliprt.serve.app

        return getattr(cliprt.serve.app, name)
    if name == "Limits":
        from cliprt.serve.limits import Limits

        return Limits
    raise AttributeError(f"module 'cliprt.serve' has no attribute {name!r}")
