"""Hybrid retrieval: dense (Chroma) and BM25 chunk rankings, fused by reciprocal rank, as papers.

Each retriever's chunk ranking becomes a paper ranking (a paper ranks where its best chunk does);
the paper rankings are fused with RRF. A paper's evidence is its best chunk by the fused chunk
ranking, so the passage shown is the one both retrievers liked most.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from rag.embedder import Embedder
from rag.lexical import LexicalIndex
from rag.store import Store

Mode = Literal["hybrid", "dense", "bm25"]
RRF_K = 60
# BM25's vote counts a little more: with equal weights, ties between "first in one list, second
# in the other" are common and lexical matches on the asked-for terms settle them better.
WEIGHTS = {"dense": 1.0, "bm25": 1.2}
DEPTH = 60  # chunks taken from each retriever before fusion


@dataclass
class PaperHit:
    rank: int
    paper_id: str
    title: str
    score: float
    evidence: str  # the best chunk's text without its title line
    chunk_id: str
    dense_similarity: float = 0.0  # best cosine similarity of any of its chunks (0 if unseen)

    def as_json(self) -> dict:
        return {
            "rank": self.rank,
            "paper_id": self.paper_id,
            "title": self.title,
            "score": round(self.score, 6),
            "evidence": self.evidence,
        }


@dataclass
class SearchResult:
    query: str
    results: list[PaperHit]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        return {
            "query": self.query,
            "results": [hit.as_json() for hit in self.results],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


def _strip_title(text: str, title: str) -> str:
    head, _, rest = text.partition("\n")
    return rest if head == title and rest else text


def _paper_ranking(chunk_ids: list[str], paper_of: Callable[[str], str]) -> list[str]:
    seen: dict[str, None] = {}
    for cid in chunk_ids:
        seen.setdefault(paper_of(cid), None)
    return list(seen)


class Retriever:
    """Owns the store, the embedder and the BM25 index; answers `search` calls."""

    def __init__(self, store: Store, embedder: Embedder, lexical: LexicalIndex | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self._lexical = lexical

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None or self._lexical.fingerprint != self.store.fingerprint():
            self._lexical = LexicalIndex.open(self.store)
        return self._lexical

    def search(self, query: str, k: int = 10, mode: Mode = "hybrid") -> SearchResult:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        texts: dict[str, str] = {}
        titles: dict[str, str] = {}
        paper_of: dict[str, str] = {}
        dense_sim: dict[str, float] = {}
        rankings: list[tuple[float, list[str]]] = []  # (weight, chunk-id ranking)

        if mode in ("hybrid", "dense"):
            t = time.perf_counter()
            vector = self.embedder.embed([query])[0].tolist()
            timings["embed"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            hits = self.store.dense(vector, DEPTH)
            timings["dense"] = (time.perf_counter() - t) * 1000
            for h in hits:
                texts[h.chunk_id] = h.text
                titles[h.chunk_id] = str(h.metadata["title"])
                paper_of[h.chunk_id] = str(h.metadata["paper_id"])
                pid = paper_of[h.chunk_id]
                dense_sim[pid] = max(dense_sim.get(pid, -1.0), h.similarity)
            rankings.append((WEIGHTS["dense"], [h.chunk_id for h in hits]))

        if mode in ("hybrid", "bm25"):
            t = time.perf_counter()
            lex = self.lexical.search(query, DEPTH)
            timings["bm25"] = (time.perf_counter() - t) * 1000
            rankings.append((WEIGHTS["bm25"], [h.chunk_id for h in lex]))
            missing = [h.chunk_id for h in lex if h.chunk_id not in texts]
            if missing:
                got = self.store.collection.get(ids=missing, include=["documents", "metadatas"])
                for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                    texts[cid] = doc
                    titles[cid] = str(meta["title"])
                    paper_of[cid] = str(meta["paper_id"])

        t = time.perf_counter()
        paper_scores: dict[str, float] = {}
        chunk_scores: dict[str, float] = {}
        for weight, ranking in rankings:
            ranking = [c for c in ranking if c in paper_of]
            for rank, cid in enumerate(ranking, start=1):
                chunk_scores[cid] = chunk_scores.get(cid, 0.0) + weight / (RRF_K + rank)
            for rank, pid in enumerate(_paper_ranking(ranking, paper_of.__getitem__), start=1):
                paper_scores[pid] = paper_scores.get(pid, 0.0) + weight / (RRF_K + rank)
        best_chunk: dict[str, str] = {}
        for cid, score in sorted(chunk_scores.items(), key=lambda kv: -kv[1]):
            best_chunk.setdefault(paper_of[cid], cid)
        ordered = sorted(paper_scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        results = []
        for rank, (pid, score) in enumerate(ordered, start=1):
            cid = best_chunk[pid]
            results.append(
                PaperHit(
                    rank=rank,
                    paper_id=pid,
                    title=titles[cid],
                    score=score,
                    evidence=_strip_title(texts[cid], titles[cid]),
                    chunk_id=cid,
                    dense_similarity=dense_sim.get(pid, 0.0),
                )
            )
        timings["fuse"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        return SearchResult(query=query, results=results, timings_ms=timings)
