"""The shipped `shapes` model is as accurate as its training made it, measured here on
the runtime alone with training/evaluate.py's protocol (fixed seeds, images never seen
in training).

FLOORS sit a few points under what the packaged model measures (fp32: 0.54 held-out
zero-shot, 0.985 seen, recall@1 0.97, recall@5 0.998; benchmarks/results/
accuracy_shapes.md) to allow for onnxruntime's kernels across CPUs, and far above chance
(1/48 zero-shot, 1/96 recall@1): a model folder with the wrong weights, preprocessing or
tokenizer fails them.
"""

from __future__ import annotations

import pytest

from cliprt.runtime import ClipModel
from training import evaluate

FLOORS = {"zero_shot_heldout": 0.50, "zero_shot_seen": 0.96, "recall@1": 0.94, "recall@5": 0.98}


@pytest.fixture(scope="module")
def measured(shapes32: ClipModel, shapes_int8: ClipModel) -> dict[str, dict[str, float]]:
    return {
        "fp32": evaluate.evaluate(shapes32.encode_images, shapes32.encode_texts),
        "int8": evaluate.evaluate(shapes_int8.encode_images, shapes_int8.encode_texts),
    }


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_accuracy_stays_above_its_floors(
    measured: dict[str, dict[str, float]], precision: str
) -> None:
    got = measured[precision]
    low = {m: (got[m], floor) for m, floor in FLOORS.items() if got[m] < floor}
    assert not low, f"{precision}: metric (measured, floor) below floor: {low}"


@pytest.mark.slow
def test_int8_is_within_one_point_of_fp32(measured: dict[str, dict[str, float]]) -> None:
    for metric in FLOORS:
        assert abs(measured["fp32"][metric] - measured["int8"][metric]) <= 0.01 + 1e-9, metric
