"""The real CLIP tokenizer, rebuilt from OpenAI's BPE vocabulary shipped in assets/.

Why the vocabulary ships with cliprt: no model hub is reachable on the machines cliprt
is built and tested on, and `random:ViT-B-32` exports need a tokenizer too. The file is
OpenAI's MIT-licensed `bpe_simple_vocab_16e6.txt.gz` (1.3 MB), unchanged.
The construction is the one of openai/CLIP's simple_tokenizer.py: 256 byte symbols,
the same with the end-of-word marker, 48,894 merges, then the two special tokens.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

BPE_VOCAB_PATH = Path(__file__).with_name("assets") / "bpe_simple_vocab_16e6.txt.gz"
BOS_TOKEN, EOS_TOKEN = "<|startoftext|>", "<|endoftext|>"
BOS_ID, EOS_ID = 49406, 49407
VOCAB_SIZE = 49408
_N_MERGES = VOCAB_SIZE - 256 - 256 - 2


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


@lru_cache(maxsize=1)
def vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """Returns CLIP's vocab (token -> id, 49,408 entries) and merges ("a b" lines)."""
    with gzip.open(BPE_VOCAB_PATH, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1 : _N_MERGES + 1]  # line 0 is a version header
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    tokens += ["".join(m.split(" ")) for m in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    if len(tokens) != VOCAB_SIZE:
        raise RuntimeError(f"{BPE_VOCAB_PATH} gave {len(tokens)} tokens, expected {VOCAB_SIZE}")
    return {t: i for i, t in enumerate(tokens)}, merges


def write_vocab_files(folder: str | Path) -> tuple[Path, Path]:
    """Writes vocab.json and merges.txt (the HF CLIPTokenizer's files) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = vocab_and_merges()
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_path.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def save_clip_tokenizer(folder: str | Path, *, model_max_length: int = 77) -> None:
    """Saves a complete HF CLIP tokenizer (slow and fast files, tokenizer.json) to `folder`.

    Needs transformers (the `export` extra): its CLIPTokenizerFast converter writes the
    tokenizer.json that the torch-free runtime reads with `tokenizers`.
    """
    import tempfile

    from transformers import CLIPTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        vocab_path, merges_path = write_vocab_files(tmp)
        tok = CLIPTokenizerFast(
            vocab_file=str(vocab_path),
            merges_file=str(merges_path),
            model_max_length=model_max_length,
        )
    tok.save_pretrained(str(folder))
