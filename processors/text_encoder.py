"""A text model served with ONNX Runtime (training/text_export.py makes the two graphs): typed
words into query vectors, products (their words and dense features) into product vectors, one
normalised space. Each graph carries its own vocabulary in its metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from processors.embedding import onnx_session
from processors.tokens import WordIds, WordPiece


class TextEncoder:
    def __init__(self, query: bytes, product: bytes, model_version: str, threads: int = 0) -> None:
        self.model_version = model_version
        self._query = onnx_session(query, threads)
        self._product = onnx_session(product, threads)
        q_meta = self._query.get_modelmeta().custom_metadata_map
        p_meta = self._product.get_modelmeta().custom_metadata_map
        max_tokens = int(q_meta.get("max_tokens", "32"))
        self.kind = q_meta["kind"]
        self._pieces = (
            WordPiece(json.loads(q_meta["wordpiece"]), max_tokens)
            if "wordpiece" in q_meta
            else None
        )
        self._query_words = WordIds(json.loads(q_meta["words"])) if "words" in q_meta else None
        self._product_words = WordIds(json.loads(p_meta["words"]))
        self.dim = int(self._product.get_outputs()[0].shape[-1])

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self._pieces is not None:
            ids, mask = self._pieces.batch(texts)
            feeds = {"ids": ids, "mask": mask}
        else:
            assert self._query_words is not None
            feeds = {"ids": self._query_words.batch(texts)[0]}
        out: np.ndarray = self._query.run(None, feeds)[0]
        return out.astype(np.float32)

    def products(self, texts: Sequence[str], dense: np.ndarray) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        ids = self._product_words.batch(texts)[0]
        out: np.ndarray = self._product.run(None, {"ids": ids, "dense": dense.astype(np.float32)})[
            0
        ]
        return out.astype(np.float32)
