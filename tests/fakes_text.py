"""Store-free stand-ins for the unit tests of the question path: a BM25-like IDF table over a few
texts and a bag-of-words embedder, so scores can be worked out by hand."""

from __future__ import annotations

import math
import zlib

import numpy as np

from rag.terms import analyse


class TinyLexical:
    """`idf` and `knows` as LexicalIndex computes them, over the given texts as chunks."""

    def __init__(self, texts: list[str]) -> None:
        self.size = len(texts)
        self._df: dict[str, int] = {}
        for text in texts:
            for term in set(analyse(text)):
                self._df[term] = self._df.get(term, 0) + 1

    def idf(self, term: str) -> float:
        return math.log((self.size + 1) / (self._df.get(term, 0) + 0.5))

    def knows(self, term: str) -> bool:
        return term in self._df


class BagOfWords:
    """Unit vectors of hashed analysed terms: texts sharing words are close. Counts its calls."""

    dimension = 64

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for term in analyse(text):
                out[row, zlib.crc32(term.encode()) % self.dimension] += 1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out

    embed_cached = embed
