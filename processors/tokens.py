"""Text to model inputs, in plain Python so the serving path needs no tokenizer library.

- ``WordPiece``: BERT's uncased WordPiece (what MiniLM-L6 was trained with): lower-case,
  accents stripped, punctuation split off, each word cut greedily into the longest vocabulary
  pieces ("##" marks a continuation).
- ``WordIds``: plain words to rows of a word-vector table (GloVe, for the GRU).
Query text is bounded before it gets here (processors/text.py); ids are capped at
``max_tokens``."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

from processors.text import words

MAX_WORD_CHARS = 100  # BERT's limit: a longer "word" is [UNK]


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_words(text: str) -> list[str]:
    """BERT's basic tokenization, uncased: control characters out, accents stripped,
    punctuation as words of its own."""
    text = unicodedata.normalize("NFD", text.lower())
    out: list[str] = []
    word: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Mn":
            continue  # an accent
        if ch.isspace() or (cat.startswith("C") and ch not in "\t\n\r"):
            if word:
                out.append("".join(word))
                word = []
            continue
        if _is_punctuation(ch):
            if word:
                out.append("".join(word))
                word = []
            out.append(ch)
            continue
        word.append(ch)
    if word:
        out.append("".join(word))
    return out


class WordPiece:
    def __init__(self, vocab: Sequence[str], max_tokens: int = 32) -> None:
        self.vocab = {piece: i for i, piece in enumerate(vocab)}
        self.max_tokens = max_tokens
        self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.unk, self.pad = self.vocab["[UNK]"], self.vocab["[PAD]"]

    def pieces(self, word: str) -> list[int]:
        if len(word) > MAX_WORD_CHARS:
            return [self.unk]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else f"##{word[start:end]}"
                if piece in self.vocab:
                    out.append(self.vocab[piece])
                    break
                end -= 1
            else:
                return [self.unk]  # no piece fits: the whole word is unknown
            start = end
        return out

    def ids(self, text: str) -> list[int]:
        body = [i for w in basic_words(text) for i in self.pieces(w)]
        return [self.cls, *body[: self.max_tokens - 2], self.sep]

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input ids, attention mask), int64, padded to the longest text of the batch."""
        rows = [self.ids(t) for t in texts]
        width = max((len(r) for r in rows), default=2)
        ids = np.full((len(rows), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for n, r in enumerate(rows):
            ids[n, : len(r)] = r
            mask[n, : len(r)] = 1
        return ids, mask


class WordIds:
    """Words (processors/text.words) to rows of a word-vector table: 0 pads, 1 is unknown."""

    def __init__(self, vocab: Sequence[str], max_tokens: int = 32) -> None:
        self.index = {w: i for i, w in enumerate(vocab)}
        self.max_tokens = max_tokens

    def ids(self, text: str) -> list[int]:
        return [self.index.get(w, 1) for w in words(text, self.max_tokens)] or [1]

    def batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(word ids, lengths), int64, padded with 0 to the longest text of the batch."""
        rows = [self.ids(t) for t in texts]
        width = max((len(r) for r in rows), default=1)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        for n, r in enumerate(rows):
            ids[n, : len(r)] = r
        return ids, np.array([len(r) for r in rows], dtype=np.int64)
