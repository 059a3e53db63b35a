"""Tokenization with `tokenizers` alone (CLIP's BPE; SigLIP's SentencePiece converted to
tokenizer.json at export): ids identical to transformers'
CLIPTokenizerFast(texts, padding=True, truncation=True, max_length=context_length).

A batch is padded to its longest prompt (not always to the context length) with the
manifest's pad id; a prompt longer than the context length is truncated so that EOS
stays its last token. With right padding, CLIP's causal mask and pooling at the first
EOS make the text embedding independent of the padding, so the text tower takes
input_ids alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from cliprt.errors import InputError, ModelFolderError


class ClipTokenizer:
    """Tokenizer.from_file(tokenizer.json) with CLIP's truncation and padding.

    Args:
        path: the model folder's tokenizer.json (already verified by the caller).
        context_length: the text tower's maximum sequence length (77 for CLIP).
        pad_id: the id used for padding (49407, EOS, for OpenAI's checkpoints).
        padding: "longest" (pad a batch to its longest prompt) or "max_length" (pad
            every prompt to context_length, as SigLIP was trained).
        padding_side: "right" or "left" (where the pad ids go).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        context_length: int,
        pad_id: int,
        padding: str = "longest",
        padding_side: str = "right",
    ) -> None:
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ModelFolderError(f"{path} is not a readable tokenizer.json: {exc}") from exc
        tok.no_padding()
        tok.enable_truncation(max_length=context_length)
        self._tok = tok
        self.context_length = context_length
        self.pad_id = pad_id
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        self.padding = padding
        self.padding_side = padding_side

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids of a batch, int64 (n, longest), right-padded with pad_id.

        Raises:
            InputError: an empty batch, a non-string item, or an empty/blank string.
        """
        texts = check_texts(texts)
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=True)
        longest = max(len(e.ids) for e in encodings)
        if self.padding == "max_length":
            longest = self.context_length
        ids = np.full((len(texts), longest), self.pad_id, dtype=np.int64)
        for row, enc in zip(ids, encodings, strict=True):
            if self.padding_side == "left":
                row[longest - len(enc.ids) :] = enc.ids
            else:
                row[: len(enc.ids)] = enc.ids
        return ids


def check_texts(texts: Sequence[str], *, what: str = "text") -> list[str]:
    """Checks a batch of prompts or labels and returns it as a list.

    Raises:
        InputError: not a list, empty, a non-string item, or an empty/blank string;
            the message names the item by index.
    """
    if isinstance(texts, str):
        raise InputError(f"pass a list of {what}s, not a single string: [{texts!r}]")
    try:
        texts = list(texts)
    except TypeError as exc:
        raise InputError(f"{what}s must be a list of strings, got {type(texts).__name__}") from exc
    if not texts:
        raise InputError(f"no {what}s given: pass at least one string")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"{what} {i} is a {type(t).__name__} ({t!r}), not a string")
        if not t.strip():
            raise InputError(f"{what} {i} is an empty string")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as exc:
            # A lone surrogate (e.g. from undecodable command-line bytes) is no text the
            # tokenizer can take.
            raise InputError(
                f"{what} {i} ({t[:40]!r}) is not valid Unicode: {exc.reason} at position "
                f"{exc.start}; pass text that encodes as UTF-8"
            ) from None
    return texts
