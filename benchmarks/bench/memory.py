"""Cold start and peak memory, each side alone in a fresh Python process.

Measuring them in the benchmark's own process would mix the engine's and the
reference's allocations and count imports that are already done. Here the parent starts
`python -m cliprt.bench.memory SIDE ...` and records the wall clock just before the
start; the child reports, on one JSON line, wall-clock stamps after its imports, after
loading, after its first image embedding and after its first text embedding, then its
peak RSS after embedding a full batch of each. Cold start = first embedding - parent's
start stamp: interpreter start, imports, model load and first inference, as a user's
service experiences it.

This module imports only the standard library at the top: the child must pay for
exactly the imports its side needs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

_MARK = "CLIPRT_PROBE "


def _peak_rss_bytes() -> int:
    # VmHWM belongs to this process image. ru_maxrss does not: Linux carries it over
    # fork and exec, so a child of a big parent would report the parent's peak.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # KiB on Linux


def _current_rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _gpu_memory_of(pid: int) -> int | None:
    """Bytes of GPU memory nvidia-smi attributes to `pid` (None without nvidia-smi)."""
    from cliprt.bench.env import nvidia_smi

    out = nvidia_smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
    if out is None:
        return None
    for line in out:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid):
            return int(float(parts[1]) * 1024 * 1024)  # MiB
    return 0


# ---------------------------------------------------------------- child side


def _child_engine(ns: argparse.Namespace, images: list[str], texts: list[str]) -> dict[str, Any]:
    import cliprt

    stamps = {"imported": time.time()}
    model = cliprt.load(
        ns.model,
        precision=ns.precision,
        device=ns.device,
        threads=ns.threads,
        spinning=bool(ns.spinning),
        decode_workers=ns.threads,
    )
    stamps["loaded"] = time.time()
    model.encode_images(images[:1], batch_size=1)
    stamps["first_image"] = time.time()
    model.encode_texts(texts[:1], batch_size=1)
    stamps["first_text"] = time.time()
    model.encode_images(images, batch_size=len(images))
    model.encode_texts(texts, batch_size=len(texts))
    return stamps


def _child_reference(ns: argparse.Namespace, images: list[str], texts: list[str]) -> dict[str, Any]:
    import torch  # noqa: F401  (imported here so its cost is counted)

    from cliprt.bench.reference import Reference

    stamps: dict[str, Any] = {"imported": time.time()}
    ref = Reference(ns.model, device=ns.device, precision=ns.precision, threads=ns.threads)
    stamps["loaded"] = time.time()
    ref.encode_files(images[:1])
    ref.sync()
    stamps["first_image"] = time.time()
    ref.encode_texts(texts[:1])
    ref.sync()
    stamps["first_text"] = time.time()
    ref.encode_files(images)
    ref.encode_texts(texts)
    ref.sync()
    stamps["gpu_torch"] = ref.gpu_memory()
    return stamps


def child_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the fresh process (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m cliprt.bench.memory")
    p.add_argument("side", choices=("engine", "reference"))
    p.add_argument("--model", required=True)
    p.add_argument("--precision", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--inputs", required=True, help="JSON file: {images: [...], texts: [...]}")
    p.add_argument("--spinning", type=int, default=1, help="onnxruntime spinning (1 or 0)")
    ns = p.parse_args(argv)
    with open(ns.inputs, encoding="utf-8") as f:
        inputs = json.load(f)
    rss_start = _current_rss_bytes()
    run = _child_engine if ns.side == "engine" else _child_reference
    stamps = run(ns, inputs["images"], inputs["texts"])
    stamps.update(
        peak_rss_bytes=_peak_rss_bytes(),
        rss_end_bytes=_current_rss_bytes(),
        rss_start_bytes=rss_start,
        gpu_process_bytes=_gpu_memory_of(os.getpid()) if ns.device == "cuda" else None,
        torch_imported="torch" in sys.modules,
    )
    print(_MARK + json.dumps(stamps), flush=True)
    return 0


# ---------------------------------------------------------------- parent side


def probe(
    side: str,
    *,
    model: str,
    precision: str,
    device: str,
    threads: int,
    inputs_json: str,
    spinning: bool = True,
    omp_wait_policy: str | None = None,
    timeout_s: float = 900,
) -> dict[str, Any]:
    """Runs one side in a fresh process and returns its cold-start and memory figures.

    Args:
        side: "engine" (model is a cliprt model folder) or "reference" (model is a HF
            checkpoint).
        inputs_json: a JSON file listing the image files and texts to embed.

    Returns:
        Times in ms since the parent launched the process (import_ms, load_ms,
        cold_start_image_ms, cold_start_text_ms), peak_rss_bytes, and the raw stamps.

    Raises:
        RuntimeError: the child failed; its stderr tail is in the message.
    """
    cmd = [
        sys.executable,
        "-m",
        "cliprt.bench.memory",
        side,
        "--model",
        model,
        "--precision",
        precision,
        "--device",
        device,
        "--threads",
        str(threads),
        "--inputs",
        inputs_json,
        "--spinning",
        str(int(spinning)),
    ]
    env = dict(os.environ)
    if omp_wait_policy:
        env["OMP_WAIT_POLICY"] = omp_wait_policy
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    wall_ms = (time.time() - t0) * 1000
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip()[-2000:]
        raise RuntimeError(f"{side} probe failed (exit {proc.returncode}): {tail}")
    stamps = json.loads(lines[-1][len(_MARK) :])

    def since(key: str) -> float:
        return (stamps[key] - t0) * 1000

    return {
        "side": side,
        "precision": precision,
        "device": device,
        "import_ms": since("imported"),
        "load_ms": (stamps["loaded"] - stamps["imported"]) * 1000,
        "cold_start_image_ms": since("first_image"),
        "cold_start_text_ms": since("first_text"),
        "process_wall_ms": wall_ms,
        "peak_rss_bytes": stamps["peak_rss_bytes"],
        "rss_end_bytes": stamps["rss_end_bytes"],
        "gpu_process_bytes": stamps.get("gpu_process_bytes"),
        "gpu_torch": stamps.get("gpu_torch"),
        "torch_imported": stamps["torch_imported"],
        "stamps": stamps,
        "launch_time": t0,
    }


if __name__ == "__main__":
    sys.exit(child_main())
