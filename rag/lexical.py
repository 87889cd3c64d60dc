"""The BM25 index (bm25s), a cache derived from the Chroma store.

It is saved beside the store together with the store fingerprint it was built from. When the
fingerprint differs (the store changed) or the files are missing, it is rebuilt from Chroma's
documents, so Chroma stays the single source of truth.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rag.store import Store

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
ANALYSER_VERSION = 3  # bump when `analyse` changes: saved indexes are then rebuilt


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # bm25s's English list is short; these question and filler words carry no topic either
    extra = (
        "here there what which who whom whose how also following below above according "
        "do does did doing done can could would should may might must shall will were was been being "
        "has have had".split()
    )
    return frozenset(STOPWORDS_EN) | frozenset(extra)


def analyse(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed terms: the same for chunks and queries."""
    stop = _stopwords()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words)


@dataclass(frozen=True)
class LexicalHit:
    chunk_id: str
    score: float


class LexicalIndex:
    def __init__(self, retriever, chunk_ids: list[str], fingerprint: str) -> None:
        self._bm25 = retriever
        self.chunk_ids = chunk_ids
        self.fingerprint = fingerprint

    @staticmethod
    def folder(store: Store) -> Path:
        where = hashlib.sha1(f"{store.location}|{store.settings.collection}".encode()).hexdigest()[:12]
        return Path(store.settings.data_dir) / "bm25" / where

    @classmethod
    def build(cls, store: Store) -> LexicalIndex:
        import bm25s

        ids, docs, _ = store.all_chunks()
        retriever = bm25s.BM25()
        if ids:
            retriever.index([analyse(d) for d in docs], show_progress=False)
        index = cls(retriever, ids, store.fingerprint())
        index._save(cls.folder(store))
        return index

    def _save(self, folder: Path) -> None:
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.chunk_ids:
            self._bm25.save(str(tmp))
        (tmp / "rag.json").write_text(
            json.dumps({"fingerprint": self.fingerprint, "analyser": ANALYSER_VERSION, "chunk_ids": self.chunk_ids})
        )
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    @classmethod
    def load(cls, store: Store) -> LexicalIndex | None:
        """The saved index if it matches the store, else None."""
        import bm25s

        folder = cls.folder(store)
        try:
            info = json.loads((folder / "rag.json").read_text())
            if not cls._matches(info, store):
                return None
            retriever = bm25s.BM25.load(str(folder), show_progress=False) if info["chunk_ids"] else bm25s.BM25()
        except (OSError, ValueError, KeyError):
            return None
        return cls(retriever, info["chunk_ids"], info["fingerprint"])

    @classmethod
    def is_fresh(cls, store: Store) -> bool:
        try:
            info = json.loads((cls.folder(store) / "rag.json").read_text())
        except (OSError, ValueError):
            return False
        return cls._matches(info, store)

    @staticmethod
    def _matches(info: dict, store: Store) -> bool:
        return info.get("fingerprint") == store.fingerprint() and info.get("analyser") == ANALYSER_VERSION

    @classmethod
    def open(cls, store: Store) -> LexicalIndex:
        return cls.load(store) or cls.build(store)

    def idf(self, term: str) -> float:
        """Inverse chunk frequency of an analysed term; unseen terms get the highest value."""
        vocab = self._bm25.vocab_dict or {}
        n = len(self.chunk_ids)
        i = vocab.get(term)
        df = 0 if i is None or not n else int(self._bm25.scores["indptr"][i + 1] - self._bm25.scores["indptr"][i])
        return math.log((n + 1) / (df + 0.5))

    def perfect_score(self, query: str) -> float:
        """About the BM25 score of a chunk that contains every query term once: the sum of their
        IDFs (bm25s's Lucene variant). Dividing by it gives the share of the query a chunk matched."""
        vocab = self._bm25.vocab_dict or {}
        indptr = self._bm25.scores["indptr"] if self.chunk_ids else None
        n = len(self.chunk_ids)
        total = 0.0
        for term in analyse(query):
            i = vocab.get(term)
            df = 0 if i is None or indptr is None else int(indptr[i + 1] - indptr[i])
            total += math.log(1 + (n - df + 0.5) / (df + 0.5))
        return total

    def knows(self, term: str) -> bool:
        return term in (self._bm25.vocab_dict or {})

    def search(self, query: str, n: int) -> list[LexicalHit]:
        vocab = self._bm25.vocab_dict or {}
        terms = [t for t in analyse(query) if t in vocab]
        if not terms or not self.chunk_ids:
            return []
        docs, scores = self._bm25.retrieve([terms], k=min(n, len(self.chunk_ids)), show_progress=False, n_threads=1)
        return [LexicalHit(self.chunk_ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]
