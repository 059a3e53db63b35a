"""The tokenizers-only CLIP tokenizer gives CLIPTokenizerFast's ids exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cliprt.errors import InputError
from cliprt.runtime.tokenizer import ClipTokenizer

transformers = pytest.importorskip("transformers")

PROMPTS = [
    "a photo of a cat",
    "A  PHOTO of a DOG!!",
    "  leading and trailing spaces  ",
    "naïve café, Zürich — 東京 🙂",
    "don't won't it's",
    "x",
    "numbers 1234567 and 3.14159",
    "word " * 100,  # truncated at 77, EOS kept last
    "tabs\tand\nnewlines",
    "<|startoftext|> literal specials <|endoftext|>",
]


@pytest.fixture(scope="module")
def pair(clip_tokenizer_dir: Path):
    from transformers import CLIPTokenizerFast

    ref = CLIPTokenizerFast.from_pretrained(str(clip_tokenizer_dir))
    ours = ClipTokenizer(
        clip_tokenizer_dir / "tokenizer.json", context_length=77, pad_id=ref.pad_token_id
    )
    return ref, ours


def _ref(ref, texts):
    return ref(texts, padding=True, truncation=True, max_length=77, return_tensors="np")[
        "input_ids"
    ]


def test_known_ids(pair) -> None:
    _, ours = pair
    assert ours(["a photo of a cat"]).tolist() == [[49406, 320, 1125, 539, 320, 2368, 49407]]


def test_equal_to_clip_tokenizer_fast(pair) -> None:
    ref, ours = pair
    got = ours(PROMPTS)
    assert got.dtype == np.int64
    assert np.array_equal(got, _ref(ref, PROMPTS))
    assert got.shape[1] == 77 and got[7, -1] == 49407  # truncated row ends with EOS


def test_pads_to_longest_not_to_77(pair) -> None:
    ref, ours = pair
    got = ours(["a cat", "a photo of a cat"])
    assert got.shape == (2, 7)
    assert got[0].tolist() == [49406, 320, 2368, 49407, 49407, 49407, 49407]
    assert np.array_equal(got, _ref(ref, ["a cat", "a photo of a cat"]))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.text(min_size=1, max_size=120).filter(str.strip), min_size=1, max_size=4))
def test_equal_on_arbitrary_text(pair, texts: list[str]) -> None:
    ref, ours = pair
    assert np.array_equal(ours(texts), _ref(ref, texts))


@pytest.mark.parametrize(
    ("texts", "pattern"),
    [
        ([], "no texts given"),
        (["ok", ""], "text 1 is an empty string"),
        (["ok", "   "], "text 1 is an empty string"),
        (["ok", 3], r"text 1 is a int \(3\), not a string"),
        (["ok", None], "text 1 is a NoneType"),
        ("a bare string", "not a single string"),
    ],
)
def test_bad_texts(pair, texts, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        pair[1](texts)
