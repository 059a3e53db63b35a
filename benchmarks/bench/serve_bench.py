"""`cliprt bench serve MODEL`: the load test of the micro-batching front and of
`cliprt serve`, batched against unbatched (max_batch=1) and direct concurrent model calls,
all in one run, beside the ceiling (one batched call over the same items).

Configure (ServeBenchConfig) -> measure (run) -> report (serve_report). Every cell of a
concurrency level or offered rate runs its modes back to back, in an order that rotates
from one level to the next, so that the shared machine's drift hits every mode alike.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cliprt.bench.env import environment, load_average, physical_cores
from cliprt.bench.inputs import make_images, make_texts, token_counter
from cliprt.bench.serve_load import (
    LoadResult,
    closed_loop,
    http_caller,
    open_loop,
    scrape_batch_sizes,
)
from cliprt.errors import CliprtError

MODES = ("batched", "unbatched", "direct")


@dataclass(frozen=True)
class ServeBenchConfig:
    """What `cliprt bench serve` measures.

    Attributes:
        model: an exported model folder or a shipped model name.
        precisions: engine precisions, each loaded in turn.
        modalities: "image" and/or "text" (single-item requests).
        concurrency: closed-loop caller counts, in process.
        http_concurrency: closed-loop caller counts over loopback HTTP (empty: none).
        rates: open-loop offered rates as fractions of the measured ceiling.
        threads: onnxruntime intra-op threads per tower.
        spinning: onnxruntime threads spin during a tower call (never between calls),
            in process and in the server alike; False: they sleep when idle.
        max_batch, max_wait_ms: the batched mode's limits.
        requests_per_caller: timed requests per caller in a closed-loop cell.
        warmup_rounds: untimed requests per caller before a closed-loop cell's window
            opens (serve_load.closed_loop: steady state only).
        min_requests: at least this many timed requests per cell.
        paired: requests per mode of the paired single-caller measurement (direct,
            batched in process, batched over HTTP, alternating call by call; 0: none).
        open_s: seconds of offered load per open-loop cell (at least min_requests).
        items: distinct inputs cycled through (and the ceiling's batch).
        seq_len: tokens per prompt (BOS and EOS included).
        argv: the command line, recorded.
    """

    model: str
    precisions: tuple[str, ...] = ("fp32", "int8")
    modalities: tuple[str, ...] = ("image", "text")
    concurrency: tuple[int, ...] = (1, 8, 32, 64)
    http_concurrency: tuple[int, ...] = (1, 32)
    rates: tuple[float, ...] = (0.25, 0.5, 0.8)
    threads: int = 2
    spinning: bool = False
    max_batch: int = 32
    max_wait_ms: float = 2.0
    requests_per_caller: int = 8
    warmup_rounds: int = 2
    min_requests: int = 32
    paired: int = 100
    open_s: float = 4.0
    items: int = 64
    seq_len: int = 16
    argv: tuple[str, ...] = ()


def _log(msg: str) -> None:
    print(f"bench serve: {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """A `cliprt serve` subprocess on a free loopback port."""

    def __init__(self, cfg: ServeBenchConfig, precision: str, max_batch: int, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cliprt.cli", "serve", cfg.model, "--device", "cpu",
             "--precision", precision, "--threads", str(cfg.threads),
             "--spinning" if cfg.spinning else "--no-spinning",
             "--max-batch", str(max_batch), "--max-wait-ms", str(cfg.max_wait_ms if max_batch > 1 else 0),
             "--max-queue", "4096", "--timeout-ms", "3600000", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CliprtError(f"cliprt serve exited with {self.proc.returncode}; see its log")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise CliprtError(f"cliprt serve on {self.url} was not ready within {timeout_s:.0f} s")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def _row(cfg: ServeBenchConfig, precision: str, modality: str, **kw: Any) -> dict[str, Any]:
    res: LoadResult | None = kw.pop("result", None)
    row = {"precision": precision, "modality": modality, **kw}
    if res is not None:
        d = asdict(res)
        row.update(
            {
                k: d[k]
                for k in (
                    "requests",
                    "errors",
                    "throughput_per_s",
                    "p50_ms",
                    "p90_ms",
                    "p99_ms",
                    "mean_ms",
                    "wall_s",
                )
            }
        )
        row.update(res.extra)
    row["load_average"] = load_average()
    return row


def _batch_delta(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    return {
        k: after.get(k, 0) - before.get(k, 0)
        for k in sorted(after)
        if after.get(k, 0) - before.get(k, 0)
    }


def _mean_batch(sizes: dict[int, int]) -> float | None:
    n = sum(sizes.values())
    return sum(k * v for k, v in sizes.items()) / n if n else None


def _same(value: Any) -> Any:
    """A caller factory that hands out `value` itself (closed_loop calls it per worker)."""
    return value


def _rotate(items: Sequence[str], k: int) -> list[str]:
    k %= len(items)
    return [*items[k:], *items[:k]]


def _ceiling_runs(
    model: Any, modality: str, images: list[bytes], texts: list[str], max_batch: int, reps: int
) -> list[tuple[float, float]]:
    """(wall s, process CPU s) of `reps` batched calls over all the items, after one
    untimed call."""

    def once() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        if modality == "image":
            model.encode_images(images, batch_size=max_batch)
        else:
            model.encode_texts(texts, batch_size=max_batch)
        return time.perf_counter() - t0, time.process_time() - c0

    once()  # warm
    return [once() for _ in range(reps)]


def _ceiling(runs: list[tuple[float, float]], n: int) -> dict[str, Any]:
    """The ceiling from its runs: the median call (measured before and after the closed
    loop, so that a quiet moment of a shared machine favours neither side)."""
    times = sorted(t for t, _ in runs)
    cpu = sorted(c for _, c in runs)
    return {
        "items": n,
        "seconds": times,
        "throughput_per_s": n / times[len(times) // 2],
        "cpu_ms_per_item": cpu[len(cpu) // 2] * 1000 / n,
    }


def run(cfg: ServeBenchConfig) -> dict[str, Any]:
    """Measures every cell of `cfg` and returns the result document (JSON-ready)."""
    from cliprt.runtime.model import load, resolve_model

    folder = resolve_model(cfg.model)
    env = environment(threads=cfg.threads, wait_policy="passive")
    env["uptime_start"] = _uptime()
    tmp = Path(tempfile.mkdtemp(prefix="cliprt-bench-serve-"))
    files, _ = make_images(cfg.items, tmp / "images")
    images = [p.read_bytes() for p in files]
    texts = list(make_texts(cfg.items, cfg.seq_len, token_counter(folder / "tokenizer.json")))
    bodies = {
        "image": [
            json.dumps(
                {"input": [{"image": base64.b64encode(b).decode()}], "encoding_format": "base64"}
            ).encode()
            for b in images
        ],
        "text": [json.dumps({"input": [t], "encoding_format": "base64"}).encode() for t in texts],
    }
    rows: list[dict[str, Any]] = []
    server_exit: dict[str, int] = {}
    for precision in cfg.precisions:
        _log(f"{precision}: loading {folder}")
        model = load(
            folder, precision=precision, device="cpu", threads=cfg.threads, spinning=cfg.spinning
        )
        model.warmup((1, cfg.max_batch))
        batchers = {
            "batched": model.batched(
                max_batch=cfg.max_batch, max_wait_ms=cfg.max_wait_ms, max_queue=4096
            ),
            "unbatched": model.batched(max_batch=1, max_wait_ms=0, max_queue=4096),
        }
        servers: dict[str, _Server] = {}
        if cfg.http_concurrency:
            for mode, mb in (("batched", cfg.max_batch), ("unbatched", 1)):
                servers[mode] = _Server(cfg, precision, mb, tmp / f"serve-{precision}-{mode}.log")
            for s in servers.values():
                s.wait_ready()
        try:
            for modality in cfg.modalities:
                rows += _measure(
                    cfg,
                    precision,
                    modality,
                    model,
                    batchers,
                    servers,
                    images,
                    texts,
                    bodies[modality],
                )
        finally:
            for b in batchers.values():
                b.close()
            for mode, s in servers.items():
                server_exit[f"{precision}/{mode}"] = s.stop()
            model.close()
    shutil.rmtree(tmp, ignore_errors=True)
    env["load_average_end"] = load_average()
    env["uptime_end"] = _uptime()
    return {
        "kind": "serve",
        "config": {**asdict(cfg), "model_folder": str(folder)},
        "environment": env,
        "rows": rows,
        "server_exit_codes": server_exit,
        "checks": checks(rows, cfg),
    }


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` (all its threads), from /proc; None
    where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _uptime() -> str | None:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _measure(
    cfg: ServeBenchConfig,
    precision: str,
    modality: str,
    model: Any,
    batchers: dict[str, Any],
    servers: dict[str, _Server],
    images: list[bytes],
    texts: list[str],
    bodies: list[bytes],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n = len(images) if modality == "image" else len(texts)
    ceiling_runs: list[tuple[float, float]] = []

    def direct_call(i: int) -> None:
        if modality == "image":
            model.encode_images(images[i % n])
        else:
            model.encode_texts([texts[i % n]])

    def batcher_call(b: Any) -> Callable[[int], None]:
        if modality == "image":
            return lambda i: b.embed_images(images[i % n])
        return lambda i: b.embed_texts(texts[i % n])

    for li, c in enumerate(cfg.concurrency):
        requests = max(cfg.min_requests, cfg.requests_per_caller * c)
        warmup = cfg.warmup_rounds * c
        # The ceiling of this level: 3 calls right before its cells and 3 right after,
        # so that a slow spell of a shared machine hits the ratio's both sides alike.
        level_runs = _ceiling_runs(model, modality, images, texts, cfg.max_batch, 3)
        level_rows: list[dict[str, Any]] = []
        for mode in _rotate(MODES, li):
            b = batchers.get(mode)
            before = b.stats(modality).batch_sizes if b else {}
            call = direct_call if b is None else batcher_call(b)
            cpu0 = time.process_time()
            res = closed_loop(partial(_same, call), concurrency=c, requests=requests, warmup=warmup)
            # CPU time of this whole process (callers, decoding, onnxruntime) per request
            # issued (warm-up and drain included): the cost of a request, whatever share
            # of a shared machine the run got.
            cpu_ms = (time.process_time() - cpu0) * 1000 / res.extra["issued"]
            sizes = _batch_delta(before, b.stats(modality).batch_sizes) if b else {}
            level_rows.append(
                _row(cfg, precision, modality, target="in-process", loop="closed", mode=mode,
                     concurrency=c, result=res, batch_sizes=sizes, mean_batch=_mean_batch(sizes),
                     cpu_ms_per_request=cpu_ms)
            )  # fmt: skip
            _log(f"{precision} {modality} in-process c={c:3d} {mode:9s}: {_brief(res)}")
        level_runs += _ceiling_runs(model, modality, images, texts, cfg.max_batch, 3)
        for r in level_rows:
            r["ceiling_per_s"] = _ceiling(level_runs, n)["throughput_per_s"]
        rows += level_rows
        ceiling_runs += level_runs

    if not ceiling_runs:
        ceiling_runs = _ceiling_runs(model, modality, images, texts, cfg.max_batch, 5)
    ceiling = _ceiling(ceiling_runs, n)
    _log(
        f"{precision} {modality}: ceiling {ceiling['throughput_per_s']:.1f}/s (one call of {n}, batch {cfg.max_batch})"
    )
    rows.insert(
        0,
        _row(cfg, precision, modality, target="in-process", loop="ceiling", mode="ceiling",
             concurrency=None, throughput_per_s=ceiling["throughput_per_s"], ceiling=ceiling,
             cpu_ms_per_request=ceiling["cpu_ms_per_item"]),
    )  # fmt: skip

    for li, c in enumerate(cfg.http_concurrency):
        requests = max(cfg.min_requests, cfg.requests_per_caller * c)
        warmup = cfg.warmup_rounds * c
        for mode in _rotate(("batched", "unbatched"), li):
            s = servers[mode]
            before = scrape_batch_sizes(s.url)
            cpu0, server0 = time.process_time(), _process_cpu_s(s.proc.pid)
            res = closed_loop(
                partial(http_caller, s.url, bodies), concurrency=c, requests=requests, warmup=warmup
            )
            issued = res.extra["issued"]
            client_ms = (time.process_time() - cpu0) * 1000 / issued
            server1 = _process_cpu_s(s.proc.pid)
            server_ms = None
            if server0 is not None and server1 is not None:
                server_ms = (server1 - server0) * 1000 / issued
            after = scrape_batch_sizes(s.url)
            count = after[1] - before[1]
            rows.append(
                _row(cfg, precision, modality, target="http", loop="closed", mode=mode, concurrency=c,
                     result=res, mean_batch=(after[0] - before[0]) / count if count else None,
                     cpu_ms_per_request=server_ms, client_cpu_ms_per_request=client_ms)
            )  # fmt: skip
            _log(f"{precision} {modality} http       c={c:3d} {mode:9s}: {_brief(res)}")

    if cfg.paired:
        server = servers.get("batched")
        http = partial(http_caller, server.url, bodies)() if server else None
        rows += _paired(
            cfg, precision, modality, direct_call, batcher_call(batchers["batched"]), http, server
        )

    for li, frac in enumerate(cfg.rates):
        rate = frac * ceiling["throughput_per_s"]
        requests = max(cfg.min_requests, int(rate * cfg.open_s))
        for mode in _rotate(("batched", "unbatched"), li):
            b = batchers[mode]
            before = b.stats(modality).batch_sizes

            def submit(i: int, done: Callable[[BaseException | None], None], b: Any = b) -> None:
                fut = (
                    b.submit_images(images[i % n])
                    if modality == "image"
                    else b.submit_texts(texts[i % n])
                )
                fut.add_done_callback(lambda f: done(f.exception()))

            res = open_loop(submit, rate_per_s=rate, requests=requests, seed=li)
            sizes = _batch_delta(before, b.stats(modality).batch_sizes)
            rows.append(
                _row(cfg, precision, modality, target="in-process", loop="open", mode=mode, concurrency=None,
                     offered_fraction=frac, offered_per_s=rate, result=res, batch_sizes=sizes,
                     mean_batch=_mean_batch(sizes))
            )  # fmt: skip
            _log(
                f"{precision} {modality} open {frac:.2f}x ceiling ({rate:6.1f}/s) {mode:9s}: {_brief(res)}"
            )
    return rows


def _paired(
    cfg: ServeBenchConfig,
    precision: str,
    modality: str,
    direct: Callable[[int], None],
    batched: Callable[[int], None],
    http: Callable[[int], None] | None,
    server: _Server | None,
) -> list[dict[str, Any]]:
    """One caller, the modes alternating call by call (direct, batched in process,
    batched over HTTP): the single-caller ratios compare calls made within milliseconds
    of each other, not cells a minute apart on a machine whose speed drifts.

    CPU per call: this process's for the in-process modes, the server's for HTTP (/proc
    ticks of 10 ms, summed over all the calls).
    """
    calls: dict[str, Callable[[int], None]] = {"direct": direct, "batched": batched}
    clocks: dict[str, Callable[[], float]] = dict.fromkeys(calls, time.process_time)
    if http is not None and server is not None:
        calls["http"] = http
        clocks["http"] = lambda: _process_cpu_s(server.proc.pid) or 0.0
    lat: dict[str, list[float]] = {m: [] for m in calls}
    cpu: dict[str, float] = dict.fromkeys(calls, 0.0)
    for call in calls.values():  # warm: connections, pools
        call(0)
    for i in range(cfg.paired):
        for m in _rotate(list(calls), i):
            c0 = clocks[m]()
            t0 = time.perf_counter()
            calls[m](i)
            t1 = time.perf_counter()
            cpu[m] += clocks[m]() - c0
            lat[m].append((t1 - t0) * 1000)
    rows = []
    for m, values in lat.items():
        p50, p90, p99 = (float(x) for x in np.percentile(values, [50, 90, 99]))
        rows.append(
            _row(cfg, precision, modality, target="http" if m == "http" else "in-process",
                 loop="paired", mode="batched" if m == "http" else m, concurrency=1,
                 requests=len(values), errors={}, p50_ms=p50, p90_ms=p90, p99_ms=p99,
                 mean_ms=float(np.mean(values)), cpu_ms_per_request=cpu[m] * 1000 / len(values))
        )  # fmt: skip
        _log(f"{precision} {modality} paired 1 caller {m:8s}: p50 {p50:8.2f} ms")
    return rows


def _brief(res: LoadResult) -> str:
    if res.p50_ms is None or res.p99_ms is None:
        return f"all {res.requests} requests failed: {res.errors}"
    errors = f", errors {res.errors}" if res.errors else ""
    return (
        f"{res.throughput_per_s:7.1f}/s p50 {res.p50_ms:8.2f} ms p99 {res.p99_ms:8.2f} ms{errors}"
    )


def _find(rows: list[dict[str, Any]], **kw: Any) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            # A cell whose every request failed has no latency to compare.
            return r if r["loop"] == "ceiling" or r.get("p50_ms") is not None else None
    return None


def checks(rows: list[dict[str, Any]], cfg: ServeBenchConfig) -> list[dict[str, Any]]:
    """The issue's targets, per precision and modality, as measured (never asserted)."""
    out = []
    for precision in cfg.precisions:
        for modality in cfg.modalities:
            key = {"precision": precision, "modality": modality}
            ceil = _find(rows, **key, loop="ceiling")
            c: dict[str, Any] = {**key}
            b32 = _find(
                rows, **key, target="in-process", loop="closed", mode="batched", concurrency=32
            )
            u32 = _find(
                rows, **key, target="in-process", loop="closed", mode="unbatched", concurrency=32
            )
            d32 = _find(
                rows, **key, target="in-process", loop="closed", mode="direct", concurrency=32
            )
            if ceil and b32 and u32:
                # The ceiling measured around the 32-caller cells, when there is one.
                ceiling_32 = b32.get("ceiling_per_s") or ceil["throughput_per_s"]
                c["c32_batched_over_ceiling"] = b32["throughput_per_s"] / ceiling_32
                c["c32_throughput_batched_over_unbatched"] = (
                    b32["throughput_per_s"] / u32["throughput_per_s"]
                )
                c["c32_p50_unbatched_over_batched"] = u32["p50_ms"] / b32["p50_ms"]
                c["c32_p99_batched_ms"] = b32["p99_ms"]
                c["c32_p99_unbatched_ms"] = u32["p99_ms"]
                if b32.get("cpu_ms_per_request") and u32.get("cpu_ms_per_request"):
                    c["c32_cpu_unbatched_over_batched"] = (
                        u32["cpu_ms_per_request"] / b32["cpu_ms_per_request"]
                    )
                    c["cpu_ceiling_ms_per_item"] = ceil.get("cpu_ms_per_request")
                    c["c32_cpu_batched_ms_per_request"] = b32["cpu_ms_per_request"]
                if d32:
                    c["c32_throughput_batched_over_direct"] = (
                        b32["throughput_per_s"] / d32["throughput_per_s"]
                    )
                    c["c32_p50_direct_over_batched"] = d32["p50_ms"] / b32["p50_ms"]
                    c["c32_p99_direct_ms"] = d32["p99_ms"]
            # One caller: the paired measurement when there is one (the modes alternate
            # call by call), else the closed-loop cells.
            loop = "paired" if _find(rows, **key, loop="paired") else "closed"
            c["c1_from"] = loop
            b1 = _find(rows, **key, target="in-process", loop=loop, mode="batched", concurrency=1)
            d1 = _find(rows, **key, target="in-process", loop=loop, mode="direct", concurrency=1)
            if b1 and d1:
                c["c1_p50_batched_over_direct"] = b1["p50_ms"] / d1["p50_ms"]
            h1 = _find(rows, **key, target="http", loop=loop, mode="batched", concurrency=1)
            if h1 and b1:
                c["c1_http_overhead_ms"] = h1["p50_ms"] - b1["p50_ms"]
                if h1.get("cpu_ms_per_request") is not None and b1.get("cpu_ms_per_request"):
                    # The server's CPU per request over HTTP minus the in-process cost.
                    c["c1_http_server_cpu_overhead_ms"] = (
                        h1["cpu_ms_per_request"] - b1["cpu_ms_per_request"]
                    )
            out.append(c)
    return out


def _ints(name: str, *, allow_empty: bool = False) -> Callable[[str], tuple[int, ...]]:
    def parse(text: str) -> tuple[int, ...]:
        items = [t for t in text.split(",") if t.strip()]
        try:
            values = tuple(int(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: {text!r} is not a list of integers"
            ) from None
        if (not values and not allow_empty) or any(v < 1 for v in values):
            raise argparse.ArgumentTypeError(
                f"{name}: positive integers, comma-separated, got {text!r}"
            )
        return values

    return parse


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rates: {text!r} is not a list of numbers") from None
    if any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"--rates: fractions of the ceiling > 0, got {text!r}")
    return values


def _names(name: str, allowed: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))
        bad = [v for v in values if v not in allowed]
        if not values or bad:
            raise argparse.ArgumentTypeError(
                f"{name}: choose among {', '.join(allowed)}, got {text!r}"
            )
        return values

    return parse


def parser() -> argparse.ArgumentParser:
    """The parser of `cliprt bench serve MODEL [options]`."""
    d = ServeBenchConfig(model="")
    p = argparse.ArgumentParser(
        prog="cliprt bench serve",
        description="Load-test the micro-batching front in process and `cliprt serve` over "
        "loopback HTTP: closed loop (N concurrent single-item callers) and open loop (a "
        "target rate), batched vs unbatched (max_batch=1) vs direct concurrent model calls, "
        "beside the ceiling (one batched call over the same items).",
        epilog="example:\n  cliprt export random:ViT-B-32 /tmp/vitb32 && "
        "cliprt bench serve /tmp/vitb32 --threads 2 --out results/serve/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model", metavar="MODEL", help="an exported model folder or a shipped model name"
    )
    p.add_argument(
        "--precision", type=_names("--precision", ("fp32", "fp16", "int8")), default=d.precisions
    )
    p.add_argument("--modality", type=_names("--modality", ("image", "text")), default=d.modalities)
    p.add_argument(
        "--concurrency", type=_ints("--concurrency"), default=d.concurrency, help="(1,8,32,64)"
    )
    p.add_argument(
        "--http-concurrency",
        type=_ints("--http-concurrency", allow_empty=True),
        default=d.http_concurrency,
        help="callers over HTTP (1,32); '' skips HTTP",
    )
    p.add_argument(
        "--rates", type=_fractions, default=d.rates, help="open loop, x ceiling (0.25,0.5,0.8)"
    )
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads per tower")
    p.add_argument(
        "--spinning",
        action=argparse.BooleanOptionalAction,
        default=d.spinning,
        help="onnxruntime threads spin during a tower call (cliprt serve's default); "
        "--no-spinning: they sleep when idle (the default here)",
    )
    p.add_argument("--max-batch", type=int, default=d.max_batch)
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms)
    p.add_argument(
        "--requests-per-caller",
        type=int,
        default=d.requests_per_caller,
        help=f"timed requests per caller in a closed-loop cell ({d.requests_per_caller})",
    )
    p.add_argument(
        "--warmup-rounds",
        type=int,
        default=d.warmup_rounds,
        help=f"untimed requests per caller before the window opens ({d.warmup_rounds})",
    )
    p.add_argument("--min-requests", type=int, default=d.min_requests)
    p.add_argument(
        "--paired",
        type=int,
        default=d.paired,
        help=f"single-caller requests per mode, modes alternating call by call ({d.paired}; 0: none)",
    )
    p.add_argument("--open-s", type=float, default=d.open_s)
    p.add_argument("--items", type=int, default=d.items)
    p.add_argument("--seq-len", type=int, default=d.seq_len)
    p.add_argument(
        "--out", type=Path, default=None, help="write serve.json, serve.md, serve.png here"
    )
    return p


def main(argv: Sequence[str]) -> int:
    """Runs `cliprt bench serve` with the arguments after `serve`."""
    ns = parser().parse_args(list(argv))
    cfg = ServeBenchConfig(
        model=ns.model,
        precisions=ns.precision,
        modalities=ns.modality,
        concurrency=ns.concurrency,
        http_concurrency=ns.http_concurrency,
        rates=ns.rates,
        threads=ns.threads or physical_cores(),
        spinning=ns.spinning,
        max_batch=ns.max_batch,
        max_wait_ms=ns.max_wait_ms,
        requests_per_caller=ns.requests_per_caller,
        warmup_rounds=ns.warmup_rounds,
        min_requests=ns.min_requests,
        paired=ns.paired,
        open_s=ns.open_s,
        items=ns.items,
        seq_len=ns.seq_len,
        argv=("cliprt", "bench", "serve", *argv),
    )
    from cliprt.bench import serve_report

    result = run(cfg)
    print(serve_report.markdown(result))
    if ns.out is not None:
        paths = serve_report.write(result, ns.out)
        print("\nwrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
