"""The runtime must never import torch, transformers or optimum: edge boxes lack them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "optimum")


def test_runtime_import_is_torch_free() -> None:
    code = (
        "import sys, cliprt, cliprt.runtime\n"
        "cliprt.load, cliprt.Index\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing the runtime imported: {out.stdout.strip()}"


def test_cli_help_is_torch_free() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from cliprt.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main([])\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
