"""Prometheus metrics of `cliprt serve` (GET /metrics), in a registry of their own so
that two servers in one process (tests) never share counters."""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cliprt.runtime.batching import LANES, Batcher, BatchEvent

# Request latencies from 1 ms to 10 s; batch sizes as powers of two.
_LATENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cliprt_requests", "HTTP requests answered", ["endpoint", "status"], registry=r
        )
        self.errors = Counter(
            "cliprt_errors",
            "HTTP requests answered with an error",
            ["endpoint", "kind"],
            registry=r,
        )
        self.latency = Histogram(
            "cliprt_request_seconds",
            "request latency, body read to response (seconds)",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "cliprt_batch_size", "rows per tower call", ["lane"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "cliprt_batch_seconds",
            "tower call time (seconds)",
            ["lane"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "cliprt_queue_wait_seconds",
            "time the oldest row of a tower call waited in the queue (seconds)",
            ["lane"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "cliprt_queue_depth", "items accepted and not yet computed", ["lane"], registry=r
        )
        self.in_flight = Gauge("cliprt_in_flight_requests", "requests being served", registry=r)

    def on_batch(self, event: BatchEvent) -> None:
        """The Batcher's on_batch hook."""
        self.batch_size.labels(event.lane).observe(event.size)
        self.batch_seconds.labels(event.lane).observe(event.compute_s)
        self.queue_wait.labels(event.lane).observe(event.queue_s)

    def watch(self, batcher: Batcher) -> None:
        """Reads each lane's queue depth at scrape time."""
        for lane in LANES:
            self.queue_depth.labels(lane).set_function(partial(batcher.queue_depth, lane))

    def render(self) -> bytes:
        """The exposition text of every metric."""
        return generate_latest(self.registry)
