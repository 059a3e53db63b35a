"""Web code never enters the runtime: importing cliprt.runtime (batching included) and
building the CLI (which registers `serve`) import no web framework."""

from __future__ import annotations

import subprocess
import sys

WEB = ("starlette", "uvicorn", "uvloop", "orjson", "prometheus_client", "httpx", "anyio")


def test_runtime_and_cli_import_no_web_stack() -> None:
    code = (
        "import sys, cliprt, cliprt.runtime, cliprt.runtime.batching\n"
        "cliprt.Batcher, cliprt.Overloaded\n"
        "from cliprt.cli import build_parser\n"
        "build_parser().parse_args(['serve', 'shapes'])\n"
        f"print(' '.join(m for m in {WEB!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the runtime or the CLI imported: {out.stdout.strip()}"
