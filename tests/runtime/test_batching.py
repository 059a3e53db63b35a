"""The micro-batching front on the shipped shapes model: results equal direct calls bit
for bit (fp32, fp16) whatever the batch mates, and every failure stays with its request."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cliprt
from cliprt.runtime import Batcher, ClipModel

PROMPTS = [
    "a red circle",
    "a small blue square on the left of a big green triangle",
    "x",
    "a yellow triangle",
    "word " * 40,  # past nothing, but long: the others are padded to it
    "a purple circle above a square",
]


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, (int(rng.integers(20, 90)), int(rng.integers(20, 90)), 3), np.uint8)
        for _ in range(n)
    ]


def _batch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cliprt-batch")]


@pytest.fixture(scope="module", params=["fp32", "fp16"])
def exact_model(request: pytest.FixtureRequest) -> Iterator[ClipModel]:
    model = cliprt.load("shapes", precision=request.param, device="cpu", threads=2, spinning=False)
    yield model
    model.close()


@pytest.fixture(scope="module")
def model() -> Iterator[ClipModel]:
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2, spinning=False)
    yield model
    model.close()


def test_texts_equal_direct_calls_bit_for_bit(exact_model: ClipModel) -> None:
    prompts = PROMPTS * 4
    with exact_model.batched(max_batch=8, max_wait_ms=20) as b:
        # Submitted without waiting: they share batches with prompts of other lengths.
        futures = [b.submit_texts(p) for p in prompts]
        got = [f.result(timeout=60) for f in futures]
        sizes = b.stats("text").batch_sizes
    assert max(sizes) > 1, sizes
    for p, emb in zip(prompts, got, strict=True):
        np.testing.assert_array_equal(emb, exact_model.encode_texts([p]))


def test_images_equal_direct_calls_bit_for_bit(exact_model: ClipModel) -> None:
    images = _images(12)
    with exact_model.batched(max_batch=5, max_wait_ms=20) as b:
        futures = [b.submit_images(im) for im in images]
        got = [f.result(timeout=60) for f in futures]
        sizes = b.stats("image").batch_sizes
    assert max(sizes) > 1, sizes
    for im, emb in zip(images, got, strict=True):
        np.testing.assert_array_equal(emb, exact_model.encode_images(im))


def test_multi_item_requests_and_threads(model: ClipModel) -> None:
    images = _images(6, seed=1)
    with model.batched(max_batch=4, max_wait_ms=2) as b:

        def call(i: int) -> tuple[np.ndarray, np.ndarray]:
            texts = [PROMPTS[i % 6], PROMPTS[(i + 1) % 6]]
            imgs = [images[i % 6], images[(i + 2) % 6], images[(i + 3) % 6]]
            return b.embed_texts(texts), b.embed_images(imgs)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(24)))
    for i, (t, im) in enumerate(results):
        np.testing.assert_array_equal(t, model.encode_texts([PROMPTS[i % 6], PROMPTS[(i + 1) % 6]]))
        np.testing.assert_array_equal(
            im, model.encode_images([images[i % 6], images[(i + 2) % 6], images[(i + 3) % 6]])
        )


def test_static_int8_is_bit_identical_to_direct_calls(tiny_model_dir: Path) -> None:
    # The default int8 export freezes its activation scales (manifest: batch_dependent
    # false): a row's embedding cannot depend on its batch mates, so the batcher's
    # answers equal direct calls bit for bit, as fp32's do.
    model = cliprt.load(tiny_model_dir, precision="int8", device="cpu", threads=2, spinning=False)
    try:
        assert model.manifest.export["int8"]["batch_dependent"] is False
        prompts, images = PROMPTS * 3, _images(10, seed=3)
        with model.batched(max_batch=8, max_wait_ms=20) as b:
            tf = [b.submit_texts(p) for p in prompts]
            imf = [b.submit_images(im) for im in images]
            got_t = np.concatenate([f.result(60) for f in tf])
            got_i = np.concatenate([f.result(60) for f in imf])
            assert max(b.stats("text").batch_sizes) > 1 and max(b.stats("image").batch_sizes) > 1
        np.testing.assert_array_equal(
            got_t, np.concatenate([model.encode_texts([p]) for p in prompts])
        )
        np.testing.assert_array_equal(
            got_i, np.concatenate([model.encode_images(im) for im in images])
        )
    finally:
        model.close()


def test_int8_stays_within_the_documented_bound() -> None:
    # Dynamic int8 (the shipped shapes model, `--int8-formulation dynamic`) quantizes
    # activations with one scale per batch: rows move with their batch mates. The README
    # states the bound; this holds the shapes model to it.
    model = cliprt.load("shapes", precision="int8", device="cpu", threads=2, spinning=False)
    try:
        prompts, images = PROMPTS * 3, _images(10, seed=2)
        with model.batched(max_batch=8, max_wait_ms=20) as b:
            tf = [b.submit_texts(p) for p in prompts]
            imf = [b.submit_images(im) for im in images]
            pairs = [
                (f.result(60), model.encode_texts([p])) for f, p in zip(tf, prompts, strict=True)
            ]
            pairs += [
                (f.result(60), model.encode_images(im)) for f, im in zip(imf, images, strict=True)
            ]
        cos = min(float((a @ d.T)[0, 0]) for a, d in pairs)
        print(f"int8 batched vs direct: min cosine {cos:.6f}")
        assert cos >= 0.99, cos
    finally:
        model.close()


def test_async_calls_and_a_cancelled_task(model: ClipModel) -> None:
    async def main(b: Batcher) -> list[np.ndarray]:
        slow = asyncio.ensure_future(b.aembed_images(_images(8, seed=3)))
        results = asyncio.gather(*[b.aembed_texts(p) for p in PROMPTS])
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        return await results

    with model.batched(max_batch=4) as b:
        got = asyncio.run(main(b))
    for p, emb in zip(PROMPTS, got, strict=True):
        np.testing.assert_array_equal(emb, model.encode_texts([p]))


def test_cancelled_requests_never_poison_their_batch(model: ClipModel) -> None:
    with model.batched(max_batch=16, max_wait_ms=50) as b:
        futures = [b.submit_texts(PROMPTS[i % 6]) for i in range(48)]
        for f in futures[1::2]:
            f.cancel()
        for i, f in enumerate(futures):
            if i % 2 == 0:
                np.testing.assert_array_equal(f.result(60), model.encode_texts([PROMPTS[i % 6]]))
            else:
                assert f.cancelled() or f.done()


def test_a_bad_image_fails_only_its_own_request(model: ClipModel) -> None:
    good = _images(4, seed=4)
    buf = io.BytesIO()
    Image.fromarray(good[0]).save(buf, "PNG")
    truncated = buf.getvalue()[: len(buf.getvalue()) // 2]
    with model.batched(max_batch=8, max_wait_ms=20) as b:
        futures = [b.submit_images(im) for im in good]
        bad = b.submit_images([good[0], truncated])
        garbage = b.submit_images(b"not an image")
        with pytest.raises(cliprt.InputError, match="image 1"):
            bad.result(60)
        with pytest.raises(cliprt.InputError, match="image 0"):
            garbage.result(60)
        for im, f in zip(good, futures, strict=True):
            np.testing.assert_array_equal(f.result(60), model.encode_images(im))
        assert b.stats("image").failed == 2


def test_a_full_queue_fails_fast_with_overloaded(model: ClipModel) -> None:
    with model.batched(max_batch=1, max_wait_ms=0, max_queue=3) as b:
        accepted = []
        start = time.monotonic()
        with pytest.raises(cliprt.Overloaded) as info:
            for _ in range(10_000):
                accepted.append(b.submit_texts(PROMPTS[1]))
                assert b.queue_depth("text") <= 3
        assert time.monotonic() - start < 10
        assert info.value.max_queue == 3 and info.value.retry_after_s > 0
        assert "max_queue=3" in str(info.value)
        want = model.encode_texts([PROMPTS[1]])
        for f in accepted:
            np.testing.assert_array_equal(f.result(60), want)
        assert b.stats("text").rejected == 1
        with pytest.raises(cliprt.InputError, match="exceeds max_queue"):
            b.submit_texts(["a"] * 4)


def test_a_request_past_its_deadline_is_dropped_before_compute(model: ClipModel) -> None:
    with model.batched(max_batch=4) as b:
        late = b.submit_texts(PROMPTS[0], timeout_ms=0)
        with pytest.raises(cliprt.DeadlineExceeded, match="deadline"):
            late.result(60)
        assert b.stats("text").expired == 1 and b.stats("text").batches == 0
        late_image = b.submit_images(_images(1)[0], timeout_ms=0)
        with pytest.raises(cliprt.DeadlineExceeded):
            late_image.result(60)
        assert b.stats("image").batches == 0
        with pytest.raises(cliprt.DeadlineExceeded):
            b.embed_texts(PROMPTS[0], timeout_ms=0)
        # A generous deadline is met.
        np.testing.assert_array_equal(
            b.embed_texts(PROMPTS[0], timeout_ms=60_000), model.encode_texts([PROMPTS[0]])
        )
    assert issubclass(cliprt.DeadlineExceeded, TimeoutError)


def test_close_drains_then_stops_without_leaking_threads(model: ClipModel) -> None:
    before = set(threading.enumerate())
    b = model.batched(max_batch=4, max_wait_ms=1)
    assert len(_batch_threads()) == 2
    texts = [b.submit_texts(PROMPTS[i % 6]) for i in range(40)]
    images = [b.submit_images(im) for im in _images(10, seed=5)]
    b.close()
    assert all(f.done() and f.exception() is None for f in texts + images)
    with pytest.raises(cliprt.BatcherClosed):
        b.submit_texts("a red circle")
    with pytest.raises(cliprt.BatcherClosed):
        b.embed_images(_images(1)[0])
    assert set(threading.enumerate()) <= before
    assert _batch_threads() == []


def test_close_without_draining_fails_what_is_queued(model: ClipModel) -> None:
    before = set(threading.enumerate())
    b = model.batched(max_batch=1, max_wait_ms=0)
    futures = [b.submit_texts(PROMPTS[1]) for _ in range(200)]
    futures += [b.submit_images(im) for im in _images(20, seed=6)]
    b.close(drain=False)
    assert all(f.done() for f in futures)
    errors = [f.exception() for f in futures]
    assert any(isinstance(e, cliprt.BatcherClosed) for e in errors)
    assert all(e is None or isinstance(e, cliprt.BatcherClosed) for e in errors)
    assert set(threading.enumerate()) <= before


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_batch", 0), ("max_queue", -1), ("max_wait_ms", -1), ("timeout_ms", "soon")],
)
def test_bad_limits_are_input_errors(model: ClipModel, option: str, value: object) -> None:
    with pytest.raises(cliprt.InputError, match=option):
        model.batched(**{option: value})
    assert _batch_threads() == []


def _jpegs(n: int, size: int = 640) -> list[bytes]:
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(
            buf, format="JPEG", quality=90
        )
        out.append(buf.getvalue())
    return out


def test_a_burst_of_images_is_computed_together_once_decoded(model: ClipModel) -> None:
    # 24 noisy 640x640 JPEGs take two decoders well over max_wait_ms, each one well
    # under it: the batch waits for the decodes under way instead of being cut
    # max_wait_ms after the first image is ready.
    images = _jpegs(24)
    with model.batched(max_batch=32, max_wait_ms=100, decode_workers=2) as b:
        assert b.decode_during_compute is False  # on the CPU: no decoding beside the tower
        futures = [b.submit_images(im) for im in images]
        got = [f.result(timeout=120) for f in futures]
        assert b.stats("image").batch_sizes == {24: 1}
    np.testing.assert_array_equal(np.concatenate(got), model.encode_images(images))


def test_closed_loop_callers_split_in_two_groups_are_merged(model: ClipModel) -> None:
    # Callers that send their next request as soon as they have an answer: a group
    # queued while a call ran, and the group that call answers, are one batch next time.
    # Expecting only as many as the last call held kept such a lane split in two for the
    # rest of the run (at 32 callers, batches of 20-27 instead of 32).
    callers, rounds = 12, 14
    sizes: list[int] = []
    with model.batched(max_batch=32, max_wait_ms=50, on_batch=lambda e: sizes.append(e.size)) as b:
        first = threading.Barrier(callers // 2 + 1)
        second = threading.Barrier(callers // 2 + 1)

        def caller(i: int, start: threading.Barrier) -> None:
            start.wait()
            for r in range(rounds):
                b.embed_texts(PROMPTS[(i + r) % len(PROMPTS)])

        threads = [
            threading.Thread(target=caller, args=(i, first if i % 2 else second))
            for i in range(callers)
        ]
        for t in threads:
            t.start()
        first.wait()  # one group starts; the other comes while its first call runs
        while not sizes and b.stats("text").requests < callers // 2:
            time.sleep(0.0005)
        second.wait()
        for t in threads:
            t.join(timeout=120)
    assert sum(sizes) == callers * rounds
    # After the groups' first calls, every call holds all the callers, but the last two
    # (callers one round ahead since their first call finish first: the drain).
    assert len(sizes) >= rounds and sizes[3:-2] == [callers] * (len(sizes) - 5), str(sizes)
