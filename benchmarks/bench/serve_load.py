"""Load generation for `cliprt bench serve`: closed loop (N callers, each waiting for its
answer before the next request) and open loop (requests at a target rate, Poisson
arrivals, whatever the answers do), against anything that answers one request.

A target is a factory of per-caller functions ``call(i)`` that serve request i and
return when it is answered (raising on an error), plus, for the open loop, a
``submit(i, done)`` that returns at once and calls ``done(error_or_None)`` later.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Call = Callable[[int], None]


@dataclass
class LoadResult:
    """What one load run measured.

    Attributes:
        requests: requests timed (warm-up excluded).
        errors: of those, how many failed, by error name.
        throughput_per_s: answered requests per second over the timed span.
        p50_ms, p90_ms, p99_ms: latency percentiles of answered requests (ms).
        mean_ms: mean latency (ms).
        wall_s: the timed span (s).
    """

    requests: int
    errors: dict[str, int]
    throughput_per_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def _summary(spans: list[tuple[float, float]], errors: dict[str, int], n: int) -> LoadResult:
    if not spans:
        return LoadResult(n, errors, 0.0, None, None, None, None, 0.0)
    starts = [a for a, _ in spans]
    ends = [b for _, b in spans]
    lat = np.array([b - a for a, b in spans]) * 1000
    wall = max(ends) - min(starts)
    p50, p90, p99 = (float(x) for x in np.percentile(lat, [50, 90, 99]))
    return LoadResult(
        requests=n,
        errors=errors,
        throughput_per_s=len(spans) / wall if wall > 0 else 0.0,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=float(lat.mean()),
        wall_s=wall,
    )


def closed_loop(
    make_call: Callable[[], Call], *, concurrency: int, requests: int, warmup: int
) -> LoadResult:
    """`concurrency` threads, each with its own `make_call()` (its connection), serve
    requests until `warmup + requests + concurrency` have been issued; only the steady
    state is timed.

    The window opens when `warmup` requests have been answered: the callers have all
    started and the batches formed while they were still arriving are behind. It
    closes when the first caller finds no request left: from then on fewer than
    `concurrency` callers remain and the load drains, so the last batches are partial
    (the extra `concurrency` requests issued are that drain, never timed). Latencies are
    those of the requests started inside the window (they finish during the drain at
    the latest); throughput is `concurrency` over their mean latency (Little's law,
    callers never pause), scaled by the share answered without error. The answers
    counted inside the window over its length are kept as `counted_per_s`. With few requests
    per caller, start-up and drain would otherwise be most of what is measured.
    """
    counter = itertools.count()
    lock = threading.Lock()
    spans: list[tuple[float, float, str | None]] = []  # (start, end, error name or None)
    total = warmup + requests + concurrency
    exhausted: list[float] = []
    ready = threading.Barrier(concurrency + 1)

    def caller() -> None:
        call = make_call()
        ready.wait()
        while True:
            k = next(counter)
            if k >= total:
                with lock:
                    exhausted.append(time.perf_counter())
                return
            t0 = time.perf_counter()
            error = None
            try:
                call(k)
            except Exception as exc:  # counted, never fatal: overload is a result too
                error = type(exc).__name__
            t1 = time.perf_counter()
            with lock:
                spans.append((t0, t1, error))

    threads = [
        threading.Thread(target=caller, name=f"load-{i}", daemon=True) for i in range(concurrency)
    ]
    for t in threads:
        t.start()
    ready.wait()
    for t in threads:
        t.join()
    ends = sorted(b for _, b, _ in spans)
    opens = ends[warmup - 1] if warmup else min(a for a, _, _ in spans)
    closes = min(exhausted)
    inside = [(a, b, e) for a, b, e in spans if opens <= a < closes]
    errors: dict[str, int] = {}
    for _, _, e in inside:
        if e is not None:
            errors[e] = errors.get(e, 0) + 1
    ok = [(a, b) for a, b, e in inside if e is None]
    result = _summary(ok, errors, len(inside))
    answered = sum(1 for _, b, e in spans if e is None and opens < b <= closes)
    window = closes - opens
    counted = answered / window if window > 0 and answered else 0.0
    if window > 0:
        result.wall_s = window
    if inside and ok:
        # Little's law: N callers with no pause between requests complete N requests per
        # mean latency. Counting the answers between two instants instead moved by up to
        # one batch of answers (32 at once) per window: +-6% over 8 batches of images.
        mean_s = sum(b - a for a, b, _ in inside) / len(inside)
        result.throughput_per_s = concurrency / mean_s * len(ok) / len(inside)
    result.extra.update(
        {
            "window_s": window,
            "answered_in_window": answered,
            "counted_per_s": counted,
            "issued": len(spans),
        }
    )
    return result


def open_loop(
    submit: Callable[[int, Callable[[BaseException | None], None]], None],
    *,
    rate_per_s: float,
    requests: int,
    seed: int = 0,
) -> LoadResult:
    """Submits `requests` requests at Poisson arrivals of mean rate `rate_per_s` from one
    thread, without waiting for answers; latency runs from the scheduled arrival (so a
    slow submit counts against the server, as it would for a real client)."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / rate_per_s, size=requests)
    lock = threading.Lock()
    spans: list[tuple[float, float]] = []
    errors: dict[str, int] = {}
    finished = threading.Semaphore(0)
    start = time.perf_counter() + 0.01
    arrivals = start + np.cumsum(gaps) - gaps[0]

    def done_for(t0: float) -> Callable[[BaseException | None], None]:
        def done(error: BaseException | None) -> None:
            t1 = time.perf_counter()
            with lock:
                if error is None:
                    spans.append((t0, t1))
                else:
                    errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
            finished.release()

        return done

    for k, at in enumerate(arrivals):
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            submit(k, done_for(float(at)))
        except Exception as exc:  # refused at once (Overloaded)
            done_for(float(at))(exc)
    for _ in range(requests):
        finished.acquire()
    result = _summary(spans, errors, requests)
    result.extra["offered_per_s"] = rate_per_s
    return result


def http_caller(url: str, bodies: Sequence[bytes], path: str = "/v1/embeddings") -> Call:
    """A per-thread caller over one keep-alive connection that posts bodies[i % len] and
    decodes the base64 embedding.

    The requests are prepared bytes written to a TCP_NODELAY socket and the answers are
    read by their Content-Length (which `cliprt serve` always sends), as load generators
    such as wrk do: http.client cost 0.3 ms of client CPU per request (against 0.1 ms
    here), and a load generator's own cost must not count as the server's overhead.
    """
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=300)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    requests = [(head + f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]
    pending = bytearray()

    def answer() -> tuple[int, bytes]:
        while (end := pending.find(b"\r\n\r\n")) < 0:
            _receive(sock, pending)
        lines = bytes(pending[:end]).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = dict(line.split(":", 1) for line in lines[1:])
        length = next(
            (int(v) for k, v in fields.items() if k.strip().lower() == "content-length"), None
        )
        if length is None:
            raise HttpStatusError(status, b"no Content-Length in the answer")
        while len(pending) < end + 4 + length:
            _receive(sock, pending)
        payload = bytes(pending[end + 4 : end + 4 + length])
        del pending[: end + 4 + length]
        return status, payload

    def call(i: int) -> None:
        sock.sendall(requests[i % len(requests)])
        status, payload = answer()
        if status != 200:
            raise HttpStatusError(status, payload)
        for item in json.loads(payload)["data"]:
            np.frombuffer(base64.b64decode(item["embedding"]), "<f4")

    return call


def _receive(sock: socket.socket, into: bytearray) -> None:
    chunk = sock.recv(1 << 16)
    if not chunk:
        raise ConnectionError("the server closed the connection")
    into += chunk


class HttpStatusError(Exception):
    """A load-test request answered with a non-200 status."""

    def __init__(self, status: int, payload: bytes) -> None:
        super().__init__(f"HTTP {status}: {payload[:200]!r}")
        self.status = status


def scrape_batch_sizes(url: str) -> tuple[float, float]:
    """(sum, count) of the server's cliprt_batch_size histogram, both lanes."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("cliprt_batch_size_sum"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("cliprt_batch_size_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total, count
