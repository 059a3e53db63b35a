"""Locally trained SentencePiece models that stand in for SigLIP's and Gemma's
vocabularies in `random:siglip*` checkpoints.

No machine here reaches a model hub and no package ships SigLIP's spiece.model or
Gemma's tokenizer, so a random SigLIP checkpoint gets a *real-structured* tokenizer of
the same type trained here on a small fixed English corpus: a SentencePiece Unigram
model (SigLIP) or a SentencePiece BPE model with byte fallback (Gemma, SigLIP 2). Their
vocabularies are small and are NOT the real ones: ids mean nothing outside this
checkpoint. What they do prove is the code path: the same tokenizer classes
(SiglipTokenizer, GemmaTokenizerFast) and the same conversion to tokenizer.json run on
them as on the real files.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

# Caption-like lines and a few plain sentences: deterministic text, so a test session
# trains the same model everywhere.
_CAPTION_WORDS = [
    "a",
    "photo",
    "of",
    "the",
    "cat",
    "dog",
    "bird",
    "car",
    "house",
    "tree",
    "red",
    "green",
    "blue",
    "small",
    "large",
    "old",
    "new",
    "painting",
    "drawing",
    "picture",
    "image",
    "sketch",
    "two",
    "three",
    "people",
    "person",
    "man",
    "woman",
    "child",
    "standing",
    "sitting",
    "running",
    "on",
    "in",
    "under",
    "with",
    "near",
    "street",
    "beach",
    "mountain",
    "river",
    "city",
    "night",
    "day",
    "sunset",
    "light",
    "dark",
    "white",
    "black",
    "yellow",
    "orange",
    "purple",
    "wooden",
    "metal",
    "glass",
]


def standin_corpus() -> list[str]:
    """The training lines (about 1,500, deterministic)."""
    words = _CAPTION_WORDS
    captions = [
        f"{a} {b} of a {c} {d} {e}"
        for a, b, c, d, e in itertools.islice(
            zip(
                itertools.cycle(words[:3]),
                itertools.cycle(words[3:12]),
                itertools.cycle(words[12:29]),
                itertools.cycle(words[29:41]),
                itertools.cycle(words[41:]),
            ),
            1400,
        )
    ]
    return list(_SENTENCES) + captions


_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs!",
    "How vexingly quick daft zebras jump; 1234567890.",
    "She said: \"It's a lovely day, isn't it?\" (and it was).",
    "An oil painting of a lighthouse at dusk, waves crashing against the rocks.",
    "Café crème, naïve façade, Tōkyō, Zürich, São Paulo.",
    "E-mail me at someone@example.com or call +1-555-0100 #42 & ask for 50% off.",
    "Beautiful is better than ugly. Explicit is better than implicit.",
    "Simple is better than complex. Complex is better than complicated.",
    "Readability counts; errors should never pass silently.",
)


def train_standin(kind: str, folder: str | Path, *, vocab_size: int = 600) -> Path:
    """Trains a SentencePiece model file in `folder` and returns its path.

    Args:
        kind: "siglip" (Unigram; pad 0, </s> 1, <unk> 2 as in SigLIP's spiece.model)
            or "gemma" (BPE with byte fallback; <pad> 0, <eos> 1, <bos> 2, <unk> 3 as
            in Gemma's tokenizer.model).
        folder: where to write spiece.model / tokenizer.model.
        vocab_size: pieces in the model (small: the corpus is small).
    """
    import sentencepiece as spm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    common: dict[str, Any] = {
        "sentence_iterator": iter(standin_corpus()),
        "model_writer": buf,
        "vocab_size": vocab_size,
        "hard_vocab_limit": False,
        "num_threads": 1,
        "minloglevel": 2,
        "character_coverage": 1.0,
    }
    if kind == "siglip":
        spm.SentencePieceTrainer.train(
            model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, **common
        )
        path = folder / "spiece.model"
    elif kind == "gemma":
        spm.SentencePieceTrainer.train(
            model_type="bpe",
            byte_fallback=True,
            pad_id=0,
            eos_id=1,
            bos_id=2,
            unk_id=3,
            pad_piece="<pad>",
            eos_piece="<eos>",
            bos_piece="<bos>",
            unk_piece="<unk>",
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            split_digits=True,
            allow_whitespace_only_pieces=True,
            **common,
        )
        path = folder / "tokenizer.model"
    else:
        raise ValueError(f"kind must be 'siglip' or 'gemma', got {kind!r}")
    path.write_bytes(buf.getvalue())
    return path
