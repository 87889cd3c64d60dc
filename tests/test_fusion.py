"""Fusion of dense and lexical chunk scores into ranked papers, and the reranker step after it
(rag/retrieval.py, rag/reranking.py), on hand-made chunk pools: no store."""

from __future__ import annotations

import pytest

from rag.config import Settings
from rag.question import Question
from rag.reranking import NoReranker, get_reranker
from rag.retrieval import WEIGHTS, Pool, fuse


def _pool() -> Pool:
    pool = Pool()
    chunks = {  # chunk id: (paper, dense similarity, lexical share)
        "a1": ("A", 0.80, 0.10),
        "a2": ("A", 0.20, 0.90),
        "b1": ("B", 0.70, 0.60),
        "c1": ("C", 0.90, None),  # found by the dense step only
    }
    for cid, (paper, dense, lexical) in chunks.items():
        pool.texts[cid] = f"Title {paper}\nText of {cid}."
        pool.meta[cid] = {"paper_id": paper, "title": f"Title {paper}"}
        pool.dense[cid] = dense
        if lexical is not None:
            pool.lexical[cid] = lexical
    return pool


def test_a_paper_scores_its_best_dense_plus_its_best_lexical_chunk():
    hits = fuse(_pool(), WEIGHTS["hybrid"])
    # A: 0.5 * 0.8 + 0.5 * 0.9 (two different chunks) = 0.85; B: 0.65; C: 0.45
    assert [(h.paper_id, round(h.score, 6)) for h in hits] == [("A", 0.85), ("B", 0.65), ("C", 0.45)]
    assert [h.rank for h in hits] == [1, 2, 3]
    # its evidence is its best chunk by the chunk sum (a2: 0.55 > a1: 0.45), without the title line
    assert hits[0].chunk_id == "a2" and hits[0].evidence == "Text of a2."
    assert hits[0].dense_similarity == pytest.approx(0.8)


def test_one_retriever_alone_orders_by_its_own_scores():
    assert [h.paper_id for h in fuse(_pool(), WEIGHTS["dense"])] == ["C", "A", "B"]
    assert [h.paper_id for h in fuse(_pool(), WEIGHTS["bm25"])] == ["A", "B", "C"]


def test_excluded_papers_never_appear_and_ties_go_by_id():
    assert [h.paper_id for h in fuse(_pool(), WEIGHTS["hybrid"], exclude={"A"})] == ["B", "C"]
    pool = Pool(
        texts={"x": "X\nx", "y": "Y\ny"},
        meta={"y": {"paper_id": "P2", "title": "Y"}, "x": {"paper_id": "P1", "title": "X"}},
        dense={"x": 0.5, "y": 0.5},
    )
    assert [h.paper_id for h in fuse(pool, 1.0)] == ["P1", "P2"]


def test_the_default_reranker_keeps_the_fused_order():
    hits = fuse(_pool(), WEIGHTS["hybrid"])
    reranker = get_reranker(Settings(_env_file=None))
    assert isinstance(reranker, NoReranker) and reranker.name == "none"
    assert reranker.rerank(Question.parse("anything"), hits, 2) == hits[:2]
