"""One session per tower serves many threads: concurrent results equal serial ones."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cliprt.runtime import ClipModel

THREADS = 8
CALLS_PER_THREAD = 200


@pytest.mark.slow
def test_eight_threads_give_the_single_thread_results(model32: ClipModel, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images: list[object] = []
    for i in range(6):
        arr = rng.integers(
            0, 256, (int(rng.integers(20, 90)), int(rng.integers(20, 90)), 3), dtype=np.uint8
        )
        path = tmp_path / f"{i}.png"
        Image.fromarray(arr).save(path)
        images += [arr, path]  # arrays (no decode) and files (decoded in the pool)
    prompts = ["a cat", "a photo of a dog", "a red circle on a blue square", "x", "word " * 30]

    pick = random.Random(1)
    calls: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(THREADS * CALLS_PER_THREAD):
        kind = pick.choice(("images", "texts"))
        pool = images if kind == "images" else prompts
        calls.append((kind, tuple(pick.randrange(len(pool)) for _ in range(pick.randint(1, 4)))))

    def run(call: tuple[str, tuple[int, ...]]) -> np.ndarray:
        kind, idx = call
        if kind == "images":
            return model32.encode_images([images[i] for i in idx], batch_size=2)
        return model32.encode_texts([prompts[i] for i in idx])

    expected = {call: run(call) for call in set(calls)}
    with ThreadPoolExecutor(max_workers=THREADS) as ex:
        got = list(ex.map(run, calls))
    mismatched = [c for c, g in zip(calls, got, strict=True) if not np.array_equal(g, expected[c])]
    assert not mismatched, (
        f"{len(mismatched)} of {len(calls)} concurrent calls differ, e.g. {mismatched[:3]}"
    )
