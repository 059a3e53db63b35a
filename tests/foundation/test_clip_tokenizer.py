"""The CLIP tokenizer rebuilt from OpenAI's BPE vocabulary is the real one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cliprt.export.clip_vocab import BOS_ID, EOS_ID, VOCAB_SIZE, vocab_and_merges


def _corpus() -> list[str]:
    fixed = [
        "a photo of a cat",
        "A PHOTO OF A CAT",
        "",
        " ",
        "hello, world!",
        "don't stop; it's 3:45pm...",
        "e-mail: someone@example.com #hashtag @mention",
        "12345 67.89 1e-3 0x1F",
        "café naïve façade Ångström",
        "東京タワー 北京 서울",
        "emoji 🐱🐶 🚀✨ 👩‍👩‍👧",
        "tabs\tand\nnewlines\r\n",
        "multiple     spaces",
        "Ünïcödé ñ ß œ ø",
        "a " * 100,  # > 77 tokens
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "<|startoftext|> literal special tokens <|endoftext|>",
        "(parentheses) [brackets] {braces} <angles>",
        "quotes \"double\" 'single' `back`",
        "math: 2+2=4, x^2, 50%, $100, €5, ¥3",
        "Русский текст и Ελληνικά",
        "عربى עברית हिन्दी",
    ]
    rng = random.Random(1234)
    words = [
        "photo",
        "cat",
        "dog",
        "red",
        "circle",
        "a",
        "of",
        "the",
        "big",
        "small",
        "🐱",
        "東京",
        "café",
        "!!!",
        "42",
        "3.14",
        "New-York",
        "it's",
        "#tag",
        "ÆØÅ",
        "tree",
        "x" * 30,
        "Zebra",
        "jump",
        "over",
        "lazy",
        "fox",
        "UPPER",
        "mIxEd",
        "...",
        "?",
    ]
    generated = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) for _ in range(200)]
    return fixed + generated


CORPUS = _corpus()


def test_vocabulary_has_clip_shape() -> None:
    vocab, merges = vocab_and_merges()
    assert len(vocab) == VOCAB_SIZE
    assert vocab["<|startoftext|>"] == BOS_ID
    assert vocab["<|endoftext|>"] == EOS_ID
    assert len(merges) == VOCAB_SIZE - 514


def test_known_ids(clip_tokenizer_dir: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(clip_tokenizer_dir / "tokenizer.json"))
    assert tok.encode("a photo of a cat").ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_long_text_is_truncated_to_77_keeping_bos_and_eos(clip_tokenizer_dir: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(clip_tokenizer_dir / "tokenizer.json"))
    tok.enable_truncation(77)
    ids = tok.encode("a " * 100).ids
    assert len(ids) == 77
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and set(ids[1:-1]) == {320}  # "a"


def test_case_and_whitespace_do_not_change_the_ids(clip_tokenizer_dir: Path) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(clip_tokenizer_dir / "tokenizer.json"))
    want = tok.encode("a photo of a cat").ids
    for variant in ("A PHOTO OF A CAT", "  a photo\tof a\ncat ", "A Photo  Of A Cat"):
        assert tok.encode(variant).ids == want, variant


@pytest.mark.parametrize("chunk", range(4))
def test_fast_and_tokenizers_equal_slow_reference(clip_tokenizer_dir: Path, chunk: int) -> None:
    """transformers' slow CLIPTokenizer (with ftfy, OpenAI's reference behaviour), the fast
    one and a bare `tokenizers` load of tokenizer.json agree on every string, truncated
    at 77 with EOS kept."""
    pytest.importorskip("ftfy", reason="the slow CLIPTokenizer only matches OpenAI with ftfy")
    from tokenizers import Tokenizer
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    slow = CLIPTokenizer.from_pretrained(str(clip_tokenizer_dir))
    fast = CLIPTokenizerFast.from_pretrained(str(clip_tokenizer_dir))
    bare = Tokenizer.from_file(str(clip_tokenizer_dir / "tokenizer.json"))
    bare.enable_truncation(77)
    strings = CORPUS[chunk::4]
    for s in strings:
        expected = slow(s, truncation=True, max_length=77).input_ids
        assert fast(s, truncation=True, max_length=77).input_ids == expected, s
        assert bare.encode(s).ids == expected, s
        assert expected[0] == BOS_ID and expected[-1] == EOS_ID
