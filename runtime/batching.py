"""Micro-batching: many concurrent callers of one or a few items share tower calls.

    model = cliprt.load("shapes")
    with model.batched(max_batch=32, max_wait_ms=2, max_queue=1024) as batcher:
        emb = batcher.embed_texts(["a red circle"])            # from any thread
        emb = await batcher.aembed_images([png_bytes])          # from asyncio

How it works. Images and texts have a lane each: a queue and one worker thread that
runs the tower. A text request is tokenized once, in the caller's thread, and queued at
once; an image request is decoded and preprocessed in a small thread pool and queued
when its pixels are ready, so decoding never holds up a tower call. A lane's worker
takes up to ``max_batch`` queued items per tower call (a request's items may span
calls), pads texts to the longest prompt of the call, runs the tower, and hands each
request its own rows, L2-normalised per request exactly as a direct call does.

When a batch is dispatched. As soon as the tower is free, except that while there is
concurrency (the previous call held more than one item, more than one item is queued,
or images are still being decoded) the worker waits for the batch mates it expects (the
previous call's items, whose callers come back, plus those queued or decoding when it
ended; at least as many as are queued and being decoded now; at most ``max_batch``).
Expecting only as many as the previous call held kept closed-loop callers split in two
groups for good (at 32 text callers, calls of 20-31 items instead of 32); the worker is
woken only once that many items are ready, or when its timed wait ends:

- images still being decoded are waited for while they keep coming out of the pool
  (each within twice the usual decode time of the previous one): they are accepted work
  that is milliseconds away, and on the CPU a tower call started beside their decoding
  only competes with it for the same cores (a split batch, and a slower call). On the
  CPU the pool also holds new decodes while an image tower call runs
  (``decode_during_compute``), so the requests that came during a call are decoded
  right after it and taken together;
- requests not yet submitted (closed-loop callers coming back with their next request)
  are waited for while they keep arriving: up to ``max_wait_ms`` after the latest
  arrival. Counting ``max_wait_ms`` from the oldest item instead cut each batch before
  N woken callers were all back, and the lane then stayed split into groups of N/2 or
  so (phase-locked) for the rest of the run;
- there the oldest queued item waits at most ``max(max_wait_ms, the recent tower call
  time)``, or half that time after the tower is free if later (items queued during a
  call have often waited a call already), so no batch is held back longer than about
  one call;
- arrivals count as "still arriving" while they come within ``max_wait_ms``, or 10% of
  the recent call time if longer, of each other: a straggler a little late (an event
  loop writing 32 answers, a preempted vCPU) no longer splits the lane;
- whether the answered callers come back at once is learnt: the share of a call's
  items matched by arrivals before the next call starts (an exponential mean). Below
  0.5 the lane is an open stream and takes what is queued as soon as the tower is
  free: waiting there for arrivals only idles the tower (at 0.9x the ceiling, Poisson
  text arrivals, it fell behind the offered rate).

A lone caller therefore never waits (its latency is a direct call's); N callers in a
closed loop are taken together as soon as all N are back; an open-loop stream under load
fills its batches while its arrivals keep coming.

Results do not depend on batch mates. For fp32 and fp16 a request's embedding is
bit-identical to the direct ``encode_images`` / ``encode_texts`` call of the same
items: every row of a tower is computed independently of the others, and right padding
after EOS changes nothing under CLIP's causal mask (tests check both, bit for bit).
So is the default int8 export, whose activation scales are frozen (manifest:
``batch_dependent`` false). Dynamic int8 towers (``--int8-formulation dynamic``, the
shipped ``shapes`` model) quantize activations with one scale per tensor, i.e. per
batch, so their rows move with their batch mates (see the README's Serving section for
the measured bound).

Failure is per request. A full lane refuses at once with :class:`Overloaded`; a request
past its deadline is dropped before it is computed and its caller gets
:class:`DeadlineExceeded`; a cancelled request (``Future.cancel``, a cancelled asyncio
task) is skipped and never disturbs its batch mates; an image that cannot be decoded
fails its own request with the :class:`InputError` a direct call would raise.
``close()`` refuses new requests, finishes what is queued, then joins its threads.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cliprt.errors import BatcherClosed, DeadlineExceeded, InputError, Overloaded
from cliprt.runtime.model import ClipModel, _image_list
from cliprt.runtime.preprocess import ImageInput, load_and_preprocess
from cliprt.runtime.providers import default_threads
from cliprt.runtime.tokenizer import check_texts
from cliprt.runtime.vectors import l2_normalize

__all__ = ["BatchEvent", "Batcher", "LaneStats"]

LANES = ("image", "text")


@dataclass(frozen=True)
class BatchEvent:
    """One tower call made by a lane, as reported to ``on_batch``.

    Attributes:
        lane: "image" or "text".
        size: rows in the call.
        compute_s: seconds the tower call took.
        queue_s: seconds the oldest row waited between being queued and the call.
    """

    lane: str
    size: int
    compute_s: float
    queue_s: float


@dataclass
class LaneStats:
    """Counters of one lane since the batcher started.

    Attributes:
        requests: requests accepted.
        items: items accepted.
        batches: tower calls made.
        batch_sizes: rows per tower call -> number of calls.
        rejected: requests refused as Overloaded.
        expired: requests dropped past their deadline.
        cancelled: requests cancelled by their caller before being computed.
        failed: requests failed by an input error or a tower error.
    """

    requests: int = 0
    items: int = 0
    batches: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    rejected: int = 0
    expired: int = 0
    cancelled: int = 0
    failed: int = 0


class _Request:
    """The caller's side of one call: a Future of the (n, D) normalised embeddings."""

    __slots__ = ("deadline", "future", "raw", "remaining")

    def __init__(self, n: int, dim: int, deadline: float | None) -> None:
        self.future: concurrent.futures.Future[np.ndarray] = concurrent.futures.Future()
        self.raw = np.empty((n, dim), dtype=np.float32)
        self.remaining = n
        self.deadline = deadline

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def fail(self, exc: BaseException) -> bool:
        """Sets the error unless the request is already done or cancelled."""
        try:
            self.future.set_exception(exc)
            return True
        except concurrent.futures.InvalidStateError:
            return False

    def put(self, row: int, values: np.ndarray) -> None:
        # Only the lane's worker thread calls this: no lock needed for `remaining`.
        self.raw[row] = values
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            # Normalised per request, as the direct call normalises its own rows; the
            # caller may have cancelled meanwhile.
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                self.future.set_result(l2_normalize(self.raw))


class _Item:
    __slots__ = ("payload", "queued_at", "request", "row")

    def __init__(self, request: _Request, row: int, payload: Any) -> None:
        self.request = request
        self.row = row
        self.payload = payload
        self.queued_at = 0.0


class _Lane:
    """One modality's queue and the worker thread that runs its tower."""

    def __init__(
        self,
        name: str,
        run: Callable[[list[Any]], np.ndarray],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        on_batch: Callable[[BatchEvent], None] | None,
    ) -> None:
        self.name = name
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._ready: collections.deque[_Item] = collections.deque()
        self._admitted = 0  # items accepted and not yet taken into a tower call
        self._preparing = 0  # items accepted but not yet ready (images being decoded)
        self._last_size = 0
        self._queued_at_end = 0  # items queued or decoding when the last call ended
        # Do the callers a call answers come back at once (a closed loop: wait for them)
        # or not (an open stream: waiting for arrivals only idles the tower)? Learnt as
        # the share of the answered items matched by arrivals before the next call
        # starts (an exponential mean); at 0.5 or more the lane expects them all back.
        # Counting them (never more than it waited for) would drift down one straggler
        # at a time.
        self._answered = 0
        self._returned = 0
        self._return_ratio = 1.0
        # The worker, forming a batch, needs waking only once this many items are ready
        # (or when its timed wait ends): a wake-up per returning caller cost 32 GIL
        # hand-offs per batch at 32 callers.
        self._wake_at = 1
        self._last_arrival = 0.0  # monotonic time of the latest push
        self._closing = False
        self._mean_call_s = 0.0
        self._mean_prepare_s = 0.0  # per item, as the pool runs it (decode + preprocess)
        # Set while no tower call of this lane runs; decoders may wait on it (Batcher's
        # decode_during_compute=False).
        self.tower_idle = threading.Event()
        self.tower_idle.set()
        self.stats = LaneStats()
        self._thread = threading.Thread(target=self._loop, name=f"cliprt-batch-{name}", daemon=True)
        self._thread.start()

    # -- admission (callers' threads) ------------------------------------------------

    def admit(self, n: int, *, preparing: bool) -> None:
        """Reserves room for n items or raises Overloaded / BatcherClosed."""
        with self._cond:
            if self._closing:
                raise BatcherClosed(
                    f"the batcher is closed: {self.name} request refused; make a new one with model.batched()"
                )
            if self._admitted + n > self.max_queue:
                self.stats.rejected += 1
                raise Overloaded(
                    f"{self.name} queue full: {self._admitted} items queued, max_queue={self.max_queue}; "
                    "retry later, or raise max_queue",
                    queued=self._admitted,
                    max_queue=self.max_queue,
                    retry_after_s=self.retry_after_s(),
                )
            self._admitted += n
            if preparing:
                self._preparing += n
            self.stats.requests += 1
            self.stats.items += n
            self._returned += n

    def retry_after_s(self) -> float:
        """The time the queue ahead takes to clear at the recent call speed (seconds)."""
        calls = math.ceil(self._admitted / self.max_batch) if self._admitted else 1
        return max(0.001, calls * self._mean_call_s)

    def push(self, items: Iterable[_Item], *, prepared: bool) -> None:
        """Queues ready items (prepared=True: they were counted as preparing)."""
        now = time.monotonic()
        with self._cond:
            for item in items:
                item.queued_at = now
                self._ready.append(item)
                if prepared:
                    self._preparing -= 1
            self._last_arrival = now
            if len(self._ready) >= self._wake_at:
                # Only the worker waits on this condition: one wake-up is enough.
                self._cond.notify()

    def note_prepare(self, seconds: float) -> None:
        """Records one item's decode time (an exponential mean; a benign race)."""
        mean = self._mean_prepare_s
        self._mean_prepare_s = seconds if not mean else 0.8 * mean + 0.2 * seconds

    def release(self, n: int, *, prepared: bool) -> None:
        """Gives back room for n items that will never be queued (a failed decode)."""
        with self._cond:
            self._admitted -= n
            if prepared:
                self._preparing -= n
            self._cond.notify_all()

    def depth(self) -> int:
        """Items accepted and not yet in a tower call (queued or being prepared)."""
        return self._admitted

    # -- the worker ------------------------------------------------------------------

    def _take(self) -> list[_Item] | None:
        with self._cond:
            self._wake_at = 1
            while not self._ready:
                if self._closing and self._preparing == 0:
                    return None
                self._cond.wait()
            concurrent_load = self._last_size > 1 or len(self._ready) > 1 or self._preparing > 0
            if concurrent_load:
                # Arrivals are counted from now at the earliest: decodes held back during
                # the last tower call only start now.
                since = time.monotonic()
                # The oldest item waits at most about one tower call, or half a call
                # after the tower is free (module docstring): items queued during the
                # call may have waited a call already, and cutting the batch then, before
                # the callers just answered are back (14 HTTP requests take the event
                # loop about 6 ms), kept the lane split in two groups for good.
                cap = max(
                    self._ready[0].queued_at + max(self.max_wait_s, self._mean_call_s),
                    since + max(self.max_wait_s, self._mean_call_s / 2),
                )
                while not self._closing:
                    ready = len(self._ready)
                    # Expect the last call's items back (closed-loop callers) with
                    # those that queued while it ran, or as many as are queued and
                    # decoding now; never more than max_batch.
                    returning = self._last_size if self._return_ratio >= 0.5 else 0
                    expected = max(returning + self._queued_at_end, ready + self._preparing)
                    if ready >= min(self.max_batch, expected):
                        break
                    self._wake_at = min(self.max_batch, expected)
                    if self._preparing:
                        # Accepted images, decoding now: wait while they keep coming
                        # out of the pool (a stuck or huge one stops holding the batch
                        # after twice the usual decode time).
                        patience = max(self.max_wait_s, 2 * self._mean_prepare_s)
                        until = max(since, self._last_arrival) + patience
                    else:
                        # A straggler a little over max_wait_ms late would split the
                        # lane: allow up to 10% of a call between arrivals (an event loop
                        # writing 32 answers pauses its reads for about 3 ms).
                        gap = max(self.max_wait_s, 0.1 * self._mean_call_s)
                        until = min(cap, max(since, self._last_arrival) + gap)
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            self._wake_at = 1
            if self._answered:
                # Arrivals since the last call's answers, against how many it answered.
                seen = min(1.0, self._returned / self._answered)
                self._return_ratio = 0.7 * self._return_ratio + 0.3 * seen
                self._answered = 0
            taken = [self._ready.popleft() for _ in range(min(self.max_batch, len(self._ready)))]
            self._admitted -= len(taken)
            return taken

    def _loop(self) -> None:
        while True:
            items = self._take()
            if items is None:
                return
            self._call(items)

    def _call(self, items: list[_Item]) -> None:
        now = time.monotonic()
        live: list[_Item] = []
        cancelled: set[int] = set()
        for item in items:
            req = item.request
            if req.future.cancelled():
                cancelled.add(id(req))
            elif req.future.done():
                pass  # another item of the request failed
            elif req.expired(now):
                self.stats.expired += 1
                req.fail(DeadlineExceeded(_deadline_message(self.name, req, now)))
            else:
                live.append(item)
        self.stats.cancelled += len(cancelled)
        self._last_size = len(live)
        if not live:
            return
        started = time.monotonic()
        self.tower_idle.clear()
        try:
            out = self._run([item.payload for item in live])
        except Exception as exc:  # a tower error fails this call's requests, not the lane
            for req in {id(i.request): i.request for i in live}.values():
                if req.fail(exc):
                    self.stats.failed += 1
            return
        finally:
            self.tower_idle.set()
        elapsed = time.monotonic() - started
        # An exponential mean of the call time, for Retry-After hints.
        self._mean_call_s = (
            elapsed if not self._mean_call_s else 0.8 * self._mean_call_s + 0.2 * elapsed
        )
        with self._cond:
            self._queued_at_end = len(self._ready) + self._preparing
            self._answered = len(live)
            self._returned = 0
        for item, row in zip(live, out, strict=True):
            item.request.put(item.row, row)
        self.stats.batches += 1
        self.stats.batch_sizes[len(live)] = self.stats.batch_sizes.get(len(live), 0) + 1
        if self._on_batch is not None:
            self._on_batch(BatchEvent(self.name, len(live), elapsed, started - live[0].queued_at))

    def refuse(self) -> None:
        """From now on admit() raises BatcherClosed; queued work goes on."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def close(self, *, drain: bool, timeout: float | None) -> None:
        with self._cond:
            self._closing = True
            if not drain:
                while self._ready:
                    item = self._ready.popleft()
                    self._admitted -= 1
                    item.request.fail(
                        BatcherClosed(f"the batcher closed before this {self.name} request ran")
                    )
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _deadline_message(lane: str, req: _Request, now: float) -> str:
    late_ms = (now - (req.deadline or now)) * 1000
    return (
        f"{lane} request dropped before compute: its deadline passed {late_ms:.1f} ms ago; "
        "raise timeout_ms, or lower the load (queue depth) ahead of it"
    )


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_ms(name: str, value: Any, *, allow_none: bool) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InputError(f"{name} must be a number of milliseconds >= 0, got {value!r}")
    return float(value)


class Batcher:
    """Micro-batching front for a :class:`ClipModel`; see the module docstring.

    Every method is thread-safe. Make one with ``model.batched(...)`` or
    ``Batcher(model, ...)``; it owns two worker threads and a decoding pool until
    :meth:`close` (or the end of a ``with`` block).

    Args:
        model: the loaded model whose towers it calls.
        max_batch: most rows per tower call.
        max_wait_ms: while there is concurrency, how long the worker waits for the
            next expected batch mate (ms; 10% of the recent tower call if longer); no
            item waits for mates longer than about one tower call (module docstring).
        max_queue: most items per lane accepted and not yet computed; beyond it a
            request is refused with Overloaded.
        timeout_ms: default deadline of a request, from its submission (ms); None: no
            deadline. Each call may give its own.
        decode_workers: threads decoding and preprocessing images (default: the
            min(4, CPUs), as the model's own pool).
        max_image_pixels: refuse larger images (InputError) even where the model's own
            limit is higher (a server's per-request limit).
        decode_during_compute: let the pool decode images while the image tower runs.
            Default (None): only when the tower is not on the CPU. On the CPU the tower's
            onnxruntime threads use every core; a decoder running beside them preempts
            one, and the others wait for it at the end of each parallel section, so
            the call slows down and costs more CPU (measured: README, Serving). Without
            the overlap, requests that arrive during a call are decoded right after it
            and batched together, as one batched call over them would do.
        on_batch: called from a lane's worker after each tower call with a
            :class:`BatchEvent` (metrics hooks); keep it quick.

    Raises:
        InputError: a limit that is not a positive number.
    """

    def __init__(
        self,
        model: ClipModel,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        timeout_ms: float | None = None,
        decode_workers: int | None = None,
        max_image_pixels: int | None = None,
        on_batch: Callable[[BatchEvent], None] | None = None,
        decode_during_compute: bool | None = None,
    ) -> None:
        self.model = model
        self.max_batch = _positive_int("max_batch", max_batch)
        self.max_queue = _positive_int("max_queue", max_queue)
        self.max_wait_ms = float(_check_ms("max_wait_ms", max_wait_ms, allow_none=False) or 0.0)
        self.timeout_ms = _check_ms("timeout_ms", timeout_ms, allow_none=True)
        self._decode = model.decode_options
        if max_image_pixels is not None:
            limit = min(
                _positive_int("max_image_pixels", max_image_pixels), self._decode.max_image_pixels
            )
            self._decode = dataclasses.replace(self._decode, max_image_pixels=limit)
        workers = decode_workers or min(4, default_threads())
        self._decode_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=_positive_int("decode_workers", workers),
            thread_name_prefix="cliprt-batch-decode",
        )
        if decode_during_compute is None:
            decode_during_compute = not str(model.device).startswith("cpu")
        self.decode_during_compute = bool(decode_during_compute)
        self._closed = False
        self._abort = False  # close(drain=False): queued decodes fail instead of running
        self._close_lock = threading.Lock()
        limits: dict[str, Any] = {
            "max_batch": self.max_batch,
            "max_wait_s": self.max_wait_ms / 1000,
            "max_queue": self.max_queue,
            "on_batch": on_batch,
        }
        self._lanes = {
            "image": _Lane("image", self._run_images, **limits),
            "text": _Lane("text", self._run_texts, **limits),
        }

    def __repr__(self) -> str:
        return (
            f"Batcher({self.model!r}, max_batch={self.max_batch}, max_wait_ms={self.max_wait_ms}, "
            f"max_queue={self.max_queue})"
        )

    # -- tower calls (lane workers) ----------------------------------------------------

    def _run_images(self, pixels: list[np.ndarray]) -> np.ndarray:
        return self.model.vision.run(np.stack(pixels))

    def _run_texts(self, rows: list[np.ndarray]) -> np.ndarray:
        # Right-pad to the call's longest prompt; after EOS padding changes nothing.
        ids = np.full((len(rows), max(len(r) for r in rows)), self.model.tokenizer.pad_id, np.int64)
        for out, row in zip(ids, rows, strict=True):
            out[: len(row)] = row
        return self.model.text.run(ids)

    # -- submission ----------------------------------------------------------------------

    def _deadline(self, timeout_ms: float | None) -> float | None:
        ms = (
            self.timeout_ms
            if timeout_ms is None
            else _check_ms("timeout_ms", timeout_ms, allow_none=False)
        )
        return None if ms is None else time.monotonic() + ms / 1000

    def submit_texts(
        self, texts: Sequence[str] | str, *, timeout_ms: float | None = None
    ) -> concurrent.futures.Future[np.ndarray]:
        """Queues texts and returns a Future of their L2-normalised embeddings (n, D).

        The texts are tokenized here, once. Cancelling the Future before its batch runs
        drops the request.

        Raises:
            InputError: an empty list, a non-string or empty text.
            Overloaded: the text lane is full.
            BatcherClosed: after close().
        """
        texts = check_texts([texts] if isinstance(texts, str) else texts)
        ids = self.model.tokenizer(texts)
        lane = self._lanes["text"]
        self._check_size(len(texts), "text")
        lane.admit(len(texts), preparing=False)
        req = _Request(len(texts), self.model.embed_dim, self._deadline(timeout_ms))
        lane.push((_Item(req, i, row) for i, row in enumerate(ids)), prepared=False)
        return req.future

    def submit_images(
        self, images: Iterable[ImageInput] | ImageInput, *, timeout_ms: float | None = None
    ) -> concurrent.futures.Future[np.ndarray]:
        """Queues images and returns a Future of their L2-normalised embeddings (n, D).

        Decoding and preprocessing run in the batcher's pool; an image that fails to
        decode fails this request (InputError naming it), no other.

        Raises:
            InputError: an empty list or an unsupported container.
            Overloaded: the image lane is full.
            BatcherClosed: after close().
        """
        items = _image_list(images)
        self._check_size(len(items), "image")
        lane = self._lanes["image"]
        lane.admit(len(items), preparing=True)
        req = _Request(len(items), self.model.embed_dim, self._deadline(timeout_ms))
        pre, opts = self.model.manifest.preprocessing, self._decode

        gate = None if self.decode_during_compute else lane.tower_idle

        def prepare(i: int, item: Any) -> None:
            if gate is not None:
                gate.wait()  # decode after the running image tower call, not beside it
            if self._abort:
                lane.release(1, prepared=True)
                req.fail(BatcherClosed("the batcher closed before this image request ran"))
                return
            if req.future.done() or req.expired(time.monotonic()):
                # Cancelled, failed or late: not worth decoding; the worker never sees it.
                lane.release(1, prepared=True)
                if not req.future.done():
                    lane.stats.expired += 1
                    req.fail(DeadlineExceeded(_deadline_message("image", req, time.monotonic())))
                return
            started = time.monotonic()
            try:
                pixels = load_and_preprocess(item, i, pre, opts)
            except (
                Exception
            ) as exc:  # InputError for bad input; anything else is ours to report too
                lane.release(1, prepared=True)
                if req.fail(exc):
                    lane.stats.failed += 1
                return
            lane.note_prepare(time.monotonic() - started)
            lane.push([_Item(req, i, pixels)], prepared=True)

        try:
            for i, item in enumerate(items):
                self._decode_pool.submit(prepare, i, item)
        except RuntimeError as exc:  # the pool shut down between admit and submit
            raise BatcherClosed("the batcher is closed: image request refused") from exc
        return req.future

    def _check_size(self, n: int, what: str) -> None:
        if n > self.max_queue:
            raise InputError(
                f"a request of {n} {what}s exceeds max_queue={self.max_queue}; split it, or raise max_queue"
            )

    # -- blocking and asyncio calls ----------------------------------------------------

    def embed_texts(
        self, texts: Sequence[str] | str, *, timeout_ms: float | None = None
    ) -> np.ndarray:
        """L2-normalised text embeddings float32 (n, D), computed in shared batches.

        Args:
            texts: a prompt or a (small) list of prompts.
            timeout_ms: deadline from now (ms); default: the batcher's timeout_ms.

        Raises:
            Overloaded, DeadlineExceeded, BatcherClosed, InputError.
        """
        return self._wait(self.submit_texts(texts, timeout_ms=timeout_ms), timeout_ms, "text")

    def embed_images(
        self, images: Iterable[ImageInput] | ImageInput, *, timeout_ms: float | None = None
    ) -> np.ndarray:
        """L2-normalised image embeddings float32 (n, D), computed in shared batches.

        Args:
            images: one image or a (small) list, as for ClipModel.encode_images.
            timeout_ms: deadline from now (ms); default: the batcher's timeout_ms.

        Raises:
            Overloaded, DeadlineExceeded, BatcherClosed, InputError.
        """
        return self._wait(self.submit_images(images, timeout_ms=timeout_ms), timeout_ms, "image")

    async def aembed_texts(
        self, texts: Sequence[str] | str, *, timeout_ms: float | None = None
    ) -> np.ndarray:
        """The asyncio form of :meth:`embed_texts`; cancelling the task drops the request."""
        return await self._await(
            self.submit_texts(texts, timeout_ms=timeout_ms), timeout_ms, "text"
        )

    async def aembed_images(
        self, images: Iterable[ImageInput] | ImageInput, *, timeout_ms: float | None = None
    ) -> np.ndarray:
        """The asyncio form of :meth:`embed_images`; cancelling the task drops the request."""
        return await self._await(
            self.submit_images(images, timeout_ms=timeout_ms), timeout_ms, "image"
        )

    def _wait_s(self, timeout_ms: float | None) -> float | None:
        ms = self.timeout_ms if timeout_ms is None else timeout_ms
        return None if ms is None else ms / 1000

    def _wait(
        self, fut: concurrent.futures.Future[np.ndarray], timeout_ms: float | None, lane: str
    ) -> np.ndarray:
        wait_s = self._wait_s(timeout_ms)
        try:
            return fut.result(timeout=wait_s)
        except DeadlineExceeded:
            raise
        except concurrent.futures.TimeoutError:
            # Late in the tower call or still queued: either way the caller is gone.
            fut.cancel()
            deadline_ms = (wait_s or 0.0) * 1000  # a TimeoutError implies a finite wait
            raise DeadlineExceeded(
                f"{lane} request: no result within its deadline of {deadline_ms:.1f} ms; "
                "raise timeout_ms, or lower the load"
            ) from None

    async def _await(
        self, fut: concurrent.futures.Future[np.ndarray], timeout_ms: float | None, lane: str
    ) -> np.ndarray:
        wait_s = self._wait_s(timeout_ms)
        # wrap_future propagates a cancelled task to the concurrent Future.
        afut = asyncio.wrap_future(fut)
        try:
            return await asyncio.wait_for(afut, wait_s)
        except DeadlineExceeded:
            raise
        except asyncio.TimeoutError:
            fut.cancel()
            raise DeadlineExceeded(
                f"{lane} request: no result within its deadline of {(wait_s or 0) * 1000:.1f} ms; "
                "raise timeout_ms, or lower the load"
            ) from None

    # -- introspection and shutdown ----------------------------------------------------

    def queue_depth(self, lane: str) -> int:
        """Items of `lane` ("image" or "text") accepted and not yet in a tower call."""
        return self._lane(lane).depth()

    def stats(self, lane: str) -> LaneStats:
        """A copy of `lane`'s counters."""
        s = self._lane(lane).stats
        return LaneStats(
            s.requests,
            s.items,
            s.batches,
            dict(s.batch_sizes),
            s.rejected,
            s.expired,
            s.cancelled,
            s.failed,
        )

    def retry_after_s(self, lane: str) -> float:
        """Seconds the queued work of `lane` takes to clear at the recent call speed."""
        return self._lane(lane).retry_after_s()

    def _lane(self, lane: str) -> _Lane:
        if lane not in self._lanes:
            raise InputError(f"unknown lane {lane!r}; choose one of {list(LANES)}")
        return self._lanes[lane]

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    def close(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Refuses new requests, finishes (drain=True) or fails (drain=False, with
        BatcherClosed) what is queued, then stops and joins every thread it started.

        Args:
            drain: compute what was accepted before returning.
            timeout: seconds to wait per thread (None: as long as draining takes).
        """
        with self._close_lock:
            self._closed = True
            for lane in self._lanes.values():
                lane.refuse()  # no new admissions while the pool finishes
            # Pending decodes finish and queue (drain) or fail their requests (abort); none
            # is cancelled outright, which would leave its lane waiting for it.
            self._abort = not drain
            self._decode_pool.shutdown(wait=True)
            for lane in self._lanes.values():
                lane.close(drain=drain, timeout=timeout)

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
