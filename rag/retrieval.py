"""Hybrid retrieval: dense (Chroma) and BM25 (bm25s) chunk scores, fused per paper.

Each retriever scores chunks; a paper takes its best chunk's score. The hybrid score is the
equal-weight sum of the dense cosine similarity and the BM25 score divided by the score a chunk
matching every query term would get (so BM25 speaks loudly only when it matched most of the
query). On the development suite, and on paraphrased questions where BM25 alone is weak, this
beat both retrievers and reciprocal-rank fusion (README, "How it works"). A paper's evidence is
its best chunk by the same sum.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from rag.embedders import Embedder
from rag.lexical import LexicalIndex
from rag.question import Question
from rag.reranking import NoReranker, Reranker
from rag.retrievers import Mode
from rag.store import Store

DENSE_WEIGHT = 0.5  # the rest goes to BM25
WEIGHTS: dict[Mode, float] = {"hybrid": DENSE_WEIGHT, "dense": 1.0, "bm25": 0.0}  # dense share per retriever
DEPTH = 60  # chunks taken from each retriever before fusion (at least 2k)


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
    mode: Mode = "hybrid"

    def as_json(self) -> dict:
        return {
            "query": self.query,
            "results": [hit.as_json() for hit in self.results],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }


@dataclass
class Pool:
    """The chunks the dense and lexical steps found: their text, metadata and scores."""

    texts: dict[str, str] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    dense: dict[str, float] = field(default_factory=dict)  # chunk id -> cosine similarity
    lexical: dict[str, float] = field(default_factory=dict)  # chunk id -> BM25 score / a perfect match's


def _strip_title(text: str, title: str) -> str:
    head, _, rest = text.partition("\n")
    return rest if head == title and rest else text


class Retriever:
    """Owns the store, the embedder and the BM25 index; answers `search` calls in four steps:
    dense, lexical, fusion, then the reranker."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        lexical: LexicalIndex | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self._lexical = lexical
        self.reranker: Reranker = reranker or NoReranker()

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None or self._lexical.fingerprint != self.store.fingerprint():
            self._lexical = LexicalIndex.open(self.store)
        return self._lexical

    def search(
        self, query: str | Question, k: int = 10, mode: Mode = "hybrid", exclude: Collection[str] = ()
    ) -> SearchResult:
        """The top `k` papers for `query`; papers in `exclude` are never returned (the evaluation
        uses it to ask questions whose answering papers are gone)."""
        question = Question.of(query, self.embedder)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        depth = max(DEPTH, 2 * k)
        pool = Pool()
        if mode in ("hybrid", "dense"):
            self.dense_step(question, depth, pool, timings)
        if mode in ("hybrid", "bm25"):
            t = time.perf_counter()
            self.lexical_step(question, depth, pool, capped=mode == "hybrid")
            timings["bm25"] = (time.perf_counter() - t) * 1000
        if mode == "hybrid":
            self.fill_dense(question, pool)
        t = time.perf_counter()
        fused = fuse(pool, WEIGHTS[mode], exclude)
        timings["fuse"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        results = self.reranker.rerank(question, fused, k)[:k]
        if named := self.named_papers(question.text, exclude):
            results = _named_first(named, results, fused, k)
        for rank, hit in enumerate(results, start=1):
            hit.rank = rank
        timings["rerank"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        return SearchResult(query=question.text, results=results, timings_ms=timings, mode=mode)

    def named_papers(self, text: str, exclude: Collection[str] = ()) -> dict[str, tuple[str, str]]:
        """Stored papers whose id the query names, as `rag search` prints it ("2305.10004",
        "zipnn-lossless-compression-for-ai-0d3c1e"): id -> (title, abstract). An id is no word of any
        abstract, so neither retriever would put its paper first."""
        ids = [w for w in query_words(text) if len(w) >= 5 and (any(c.isdigit() for c in w) or "-" in w)]
        ids = [w for w in ids if w not in exclude]
        return self.store.abstracts(ids) if ids else {}

    def dense_step(self, question: Question, depth: int, pool: Pool, timings: dict[str, float]) -> None:
        """The `depth` chunks nearest the question's embedding, by cosine similarity."""
        t = time.perf_counter()
        vector = question.vector.tolist()
        timings["embed"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        for h in self.store.dense(vector, depth):
            pool.texts[h.chunk_id], pool.meta[h.chunk_id] = h.text, h.metadata
            pool.dense[h.chunk_id] = h.similarity
        timings["dense"] = (time.perf_counter() - t) * 1000

    def fill_dense(self, question: Question, pool: Pool) -> None:
        """The dense similarity of chunks only BM25 found: in a crowded store the one abstract naming
        a rare term may sit below the dense depth, and scoring its dense side 0 made its rank depend
        on k (a deeper search reached it)."""
        missing = [cid for cid in pool.lexical if cid not in pool.dense]
        if not missing:
            return
        query = question.vector / (float(np.linalg.norm(question.vector)) or 1.0)
        for cid, vector in self.store.vectors(missing).items():
            v = np.asarray(vector, dtype=np.float32)
            pool.dense[cid] = float(v @ query) / (float(np.linalg.norm(v)) or 1.0)

    def lexical_step(self, question: Question, depth: int, pool: Pool, capped: bool = True) -> None:
        """The `depth` best BM25 chunks, scored as a share of a perfect match's score; `capped`
        (in hybrid) at 1, while BM25 alone keeps its full order."""
        hits = self.lexical.search(question.terms, depth)
        perfect = self.lexical.perfect_score(question.terms) or 1.0
        cap = 1.0 if capped else float("inf")
        pool.lexical.update({h.chunk_id: min(cap, h.score / perfect) for h in hits})
        missing = [cid for cid in pool.lexical if cid not in pool.texts]
        if missing:
            for cid, text, m in self.store.chunks(missing):
                pool.texts[cid], pool.meta[cid] = text, m


def query_words(text: str) -> set[str]:
    """The words of a query as typed, punctuation around them dropped: where a paper id may stand."""
    return {w.strip(".,;:!?()[]'\"") for w in text.split()}


def _named_first(
    named: dict[str, tuple[str, str]], results: list[PaperHit], fused: list[PaperHit], k: int
) -> list[PaperHit]:
    """`results` with the papers the query names by id first, taken from the fused list when it holds
    them, else as their first passage, scored as the best result."""
    top = results[0].score if results else 1.0
    first = []
    for pid, (title, abstract) in named.items():
        found = next((h for h in fused if h.paper_id == pid), None)
        first.append(found or PaperHit(0, pid, title, top, abstract, f"{pid}#0"))
    return (first + [h for h in results if h.paper_id not in named])[:k]


def fuse(pool: Pool, weight: float, exclude: Collection[str] = ()) -> list[PaperHit]:
    """Every paper in `pool`, best first: a chunk scores `weight` times its dense similarity plus
    the rest times its lexical score; a paper takes the same sum of its best dense and best lexical
    chunk scores, and its best chunk (by the chunk sum) as evidence. Ties go by id."""
    meta = pool.meta
    if exclude:
        meta = {cid: m for cid, m in meta.items() if str(m["paper_id"]) not in exclude}
    dense, lexical = pool.dense, pool.lexical
    chunk_scores = {cid: weight * dense.get(cid, 0.0) + (1 - weight) * lexical.get(cid, 0.0) for cid in meta}
    best_chunk: dict[str, str] = {}
    for cid, _ in sorted(chunk_scores.items(), key=lambda kv: (-kv[1], kv[0])):
        best_chunk.setdefault(str(meta[cid]["paper_id"]), cid)
    best_dense: dict[str, float] = {}
    best_lexical: dict[str, float] = {}
    for cid in meta:
        pid = str(meta[cid]["paper_id"])
        best_dense[pid] = max(best_dense.get(pid, 0.0), dense.get(cid, 0.0))
        best_lexical[pid] = max(best_lexical.get(pid, 0.0), lexical.get(cid, 0.0))
    paper_scores = {pid: weight * best_dense[pid] + (1 - weight) * best_lexical[pid] for pid in best_chunk}
    ordered = sorted(paper_scores.items(), key=lambda kv: (-kv[1], kv[0]))
    results = []
    for rank, (pid, score) in enumerate(ordered, start=1):
        cid = best_chunk[pid]
        title = str(meta[cid]["title"])
        results.append(
            PaperHit(
                rank=rank,
                paper_id=pid,
                title=title,
                score=score,
                evidence=_strip_title(pool.texts[cid], title),
                chunk_id=cid,
                dense_similarity=best_dense[pid],
            )
        )
    return results
